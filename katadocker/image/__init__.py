"""Images: references, the registry client and its auth, the content/layer/image stores, unpacking, pull."""
