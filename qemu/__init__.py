"""Boots virtual appliances under QEMU and drives them (build host only)."""
