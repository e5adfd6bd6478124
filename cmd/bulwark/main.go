// Command bulwark is the security toolkit for machine-learning models.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/bulwark-sec/bulwark/internal/cli"
)

func main() {
	// Ctrl-C cancels the context: training stops at the next step and keeps
	// its last checkpoint; a second Ctrl-C kills the process.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
