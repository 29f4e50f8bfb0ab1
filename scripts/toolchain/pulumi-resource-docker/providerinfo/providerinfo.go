// Package providerinfo maps the Terraform docker provider onto the Pulumi names that the
// published pulumi_docker 4.0.0 SDK sends (tokens and renames read from that SDK).
package providerinfo

import (
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	shimv2 "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim/sdk-v2"
	"github.com/pulumi/pulumi/sdk/v3/go/common/tokens"
	"github.com/terraform-providers/terraform-provider-docker/shim"
)

const pkg = "docker"

func resource(name string, typ string) *tfbridge.ResourceInfo {
	return &tfbridge.ResourceInfo{Tok: tokens.Type(pkg + ":index/" + name + ":" + typ)}
}

func dataSource(fn string) *tfbridge.DataSourceInfo {
	return &tfbridge.DataSourceInfo{Tok: tokens.ModuleMember(pkg + ":index/" + fn + ":" + fn)}
}

// Provider returns the bridge description of the docker provider at the given version.
// The SDK's docker.Image is a native resource of the upstream provider, not bridged: absent here.
func Provider(version string) tfbridge.ProviderInfo {
	container := resource("container", "Container")
	// Replacing a container must free its name and ports before the new one starts.
	container.DeleteBeforeReplace = true
	container.Fields = map[string]*tfbridge.SchemaInfo{
		// Lists the bridge would otherwise pluralize; the SDK keeps the Terraform words.
		"command":           {Name: "command"},
		"networks_advanced": {Name: "networksAdvanced"},
	}
	remoteImage := resource("remoteImage", "RemoteImage")
	// An image name is never auto-generated.
	remoteImage.Fields = map[string]*tfbridge.SchemaInfo{"name": {Name: "name"}}

	prov := tfbridge.ProviderInfo{
		P:           shimv2.NewProvider(shim.NewProvider()),
		Name:        pkg,
		Version:     version,
		Description: "A Pulumi package for interacting with Docker in Pulumi programs",
		License:     "Apache-2.0",
		Repository:  "https://github.com/pulumi/pulumi-docker",
		GitHubOrg:   "kreuzwerker",
		Config: map[string]*tfbridge.SchemaInfo{
			"host": {Default: &tfbridge.DefaultInfo{
				Value:   "unix:///var/run/docker.sock",
				EnvVars: []string{"DOCKER_HOST"},
			}},
			"registry_auth": {Name: "registryAuth", MaxItemsOne: tfbridge.False()},
		},
		Resources: map[string]*tfbridge.ResourceInfo{
			"docker_config":         resource("serviceConfig", "ServiceConfig"),
			"docker_container":      container,
			"docker_image":          remoteImage,
			"docker_network":        resource("network", "Network"),
			"docker_plugin":         resource("plugin", "Plugin"),
			"docker_registry_image": resource("registryImage", "RegistryImage"),
			"docker_secret":         resource("secret", "Secret"),
			"docker_service":        resource("service", "Service"),
			"docker_tag":            resource("tag", "Tag"),
			"docker_volume":         resource("volume", "Volume"),
		},
		DataSources: map[string]*tfbridge.DataSourceInfo{
			"docker_image":          dataSource("getRemoteImage"),
			"docker_logs":           dataSource("getLogs"),
			"docker_network":        dataSource("getNetwork"),
			"docker_plugin":         dataSource("getPlugin"),
			"docker_registry_image": dataSource("getRegistryImage"),
		},
	}
	prov.SetAutonaming(255, "-")
	return prov
}
