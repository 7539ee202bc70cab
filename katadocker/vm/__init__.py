"""The virtual machine: accelerator choice, guest kernel and initramfs, virtiofsd, QEMU."""
