"""Resource checks: start-up time, memory and CPU readings per kind (meters), image and disk
sizes, clones of the deployed instances, and density under one kernel-enforced budget."""
