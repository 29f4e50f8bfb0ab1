"""twinlab workloads: the web app (app/) and the images that carry it (images/)."""
