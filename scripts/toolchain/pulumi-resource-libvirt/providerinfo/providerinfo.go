// Package providerinfo maps the Terraform libvirt provider onto the Pulumi names that the
// published pulumi_libvirt 0.5.4 SDK sends (tokens read from that SDK).
package providerinfo

import (
	"github.com/dmacvicar/terraform-provider-libvirt/libvirt"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	shimv2 "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim/sdk-v2"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
)

const pkg = "libvirt"

func resource(name string, typ string) *tfbridge.ResourceInfo {
	return &tfbridge.ResourceInfo{Tok: tokens.Type(pkg + ":index/" + name + ":" + typ)}
}

func dataSource(fn string) *tfbridge.DataSourceInfo {
	return &tfbridge.DataSourceInfo{Tok: tokens.ModuleMember(pkg + ":index/" + fn + ":" + fn)}
}

// Provider returns the bridge description of the libvirt provider at the given version.
func Provider(version string) tfbridge.ProviderInfo {
	prov := tfbridge.ProviderInfo{
		P:           shimv2.NewProvider(withCleanup(libvirt.Provider())),
		Name:        pkg,
		Version:     version,
		Description: "A Pulumi package for creating and managing libvirt cloud resources.",
		License:     "Apache-2.0",
		Repository:  "https://github.com/pulumi/pulumi-libvirt",
		GitHubOrg:   "dmacvicar",
		Config: map[string]*tfbridge.SchemaInfo{
			"uri": {Default: &tfbridge.DefaultInfo{EnvVars: []string{"LIBVIRT_DEFAULT_URI"}}},
		},
		Resources: map[string]*tfbridge.ResourceInfo{
			"libvirt_cloudinit_disk": resource("cloudInitDisk", "CloudInitDisk"),
			"libvirt_combustion":     resource("combustion", "Combustion"),
			"libvirt_domain":         resource("domain", "Domain"),
			"libvirt_ignition":       resource("ignition", "Ignition"),
			"libvirt_network":        resource("network", "Network"),
			"libvirt_pool":           resource("pool", "Pool"),
			"libvirt_volume":         resource("volume", "Volume"),
		},
		DataSources: map[string]*tfbridge.DataSourceInfo{
			"libvirt_network_dns_host_template":        dataSource("getNetworkDnsHostTemplate"),
			"libvirt_network_dns_srv_template":         dataSource("getNetworkDnsSrvTemplate"),
			"libvirt_network_dnsmasq_options_template": dataSource("getNetworkDnsmasqOptionsTemplate"),
			"libvirt_node_device_info":                 dataSource("getNodeDeviceInfo"),
			"libvirt_node_devices":                     dataSource("getNodeDevices"),
			"libvirt_node_info":                        dataSource("getNodeInfo"),
		},
	}
	// Resources with a "name" get an auto-generated one, as in the published SDK.
	prov.SetAutonaming(255, "-")
	return prov
}
