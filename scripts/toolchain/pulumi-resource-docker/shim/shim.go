// Package shim exposes the Terraform docker provider, whose constructor lives in an internal
// package, to the Pulumi bridge.
package shim

import (
	"github.com/hashicorp/terraform-plugin-sdk/v2/helper/schema"
	"github.com/terraform-providers/terraform-provider-docker/internal/provider"
)

// NewProvider returns the Terraform docker provider.
func NewProvider() *schema.Provider {
	return provider.New("dev")()
}
