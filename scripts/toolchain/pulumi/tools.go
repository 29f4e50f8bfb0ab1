//go:build tools

// Package tools keeps the CLI's main package in the module graph so `go mod tidy`
// keeps every requirement it needs; build.sh builds it with `go build`.
package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
