// Package nft runs the nft binary on an nftables script: the one way the
// library changes the host's ruleset (vip.NoAccept). It is a runtime helper,
// not a test lab.
package nft

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Run feeds script to nft -f -, killed at ctx's end; nft applies a script
// as one transaction. The error quotes (the start of) what nft wrote to
// stderr.
func Run(ctx context.Context, nft, script string) error {
	cmd := exec.CommandContext(ctx, nft, "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 100 * time.Millisecond // a child holding stderr open must not keep Wait waiting
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			if len(msg) > 200 {
				msg = msg[:200] + "..."
			}
			return fmt.Errorf("nft: %w: %s", err, msg)
		}
		return fmt.Errorf("nft: %w", err)
	}
	return nil
}
