"""The runtime: composes rootfs, namespaces, cgroups and layers into a container."""
