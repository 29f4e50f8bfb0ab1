// Local stand-in for the shim folder that pulumi-docker 4.0.0 keeps in its own repository (not
// published). Its path must sit under the Terraform provider's module path so that it may import
// that module's internal/provider package.
module github.com/terraform-providers/terraform-provider-docker/shim

go 1.25

require github.com/terraform-providers/terraform-provider-docker v0.0.0-20221102105757-3489fbbafc7b

replace github.com/terraform-providers/terraform-provider-docker => github.com/kreuzwerker/terraform-provider-docker v0.0.0-20221102105757-3489fbbafc7b
