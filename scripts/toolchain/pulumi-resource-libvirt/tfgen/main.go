// Command tfgen writes the provider's Pulumi schema (`tfgen schema --out DIR`); build.sh runs
// it once and embeds the result in the provider binary.
package main

import (
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfgen"

	"twinlab/toolchain/pulumi-resource-libvirt/providerinfo"
)

// version is stamped by build.sh with -ldflags "-X main.version=...".
var version string

func main() {
	tfgen.Main("libvirt", version, providerinfo.Provider(version))
}
