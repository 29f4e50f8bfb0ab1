"""What the checks talk to: target URLs, the deployed stack's variants, the Docker and libvirt
daemons, and the HTTP readiness wait."""
