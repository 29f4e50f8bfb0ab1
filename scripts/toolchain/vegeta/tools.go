//go:build tools

// Package tools keeps vegeta's main package in the module graph so `go mod tidy` keeps every
// requirement it needs; build.sh builds it with `go build`.
package tools

import _ "github.com/tsenart/vegeta/v12"
