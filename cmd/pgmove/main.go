// Command pgmove moves a live PostgreSQL database to another cluster with
// logical replication.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/pgmove/pgmove/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
