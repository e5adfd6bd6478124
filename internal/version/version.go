// Package version holds bulwark's version, set at build time with
// -ldflags "-X github.com/bulwark-sec/bulwark/internal/version.Version=...".
package version

// Version is the release, or "dev" plus the commit for a local build.
var Version = "0.1.0-dev"
