"""Networks as network namespaces katadocker owns: bridges, TAPs, IPAM, NAT, published ports."""
