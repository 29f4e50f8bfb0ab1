"""Stack output names, shared by the program, the checks and the tests.

Both deployments export the same keys inside their output object, so everything downstream
treats them alike.
"""

CONTAINER = "container"
VM = "vm"
VARIANTS = (CONTAINER, VM)

# Keys inside each variant's output object.
URL = "url"  # http://127.0.0.1:PORT of the app
TARGET = "target"  # check address: docker://NAME or ssh://USER@127.0.0.1:PORT
INSTANCE_NAME = "instanceName"  # container name or libvirt domain name
INSTANCE_ID = "instanceId"  # container ID or domain UUID
IMAGE = "image"  # container image tag or base disk volume
READY_S = "readySeconds"  # seconds from instance creation to first HTTP 200, measured by up

# Top-level keys.
VM_SSH_PRIVATE_KEY = "vmSshPrivateKey"  # secret
VIRT_MODE = "virtMode"  # "kvm" or "tcg"
LIMITS = "limits"  # {"vcpus", "memoryMib", "cpuSet"}: identical for both
APP_VERSION = "appVersion"
DOCKER_HOST = "dockerHost"
LIBVIRT_URI = "libvirtUri"
RECIPE_HASH = "imageRecipeHash"
THRESHOLDS = "thresholds"  # JSON object: the stack's claim threshold overrides
