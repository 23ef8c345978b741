// Package nft runs the nft binary on an nftables script: the one way this
// module changes the host's ruleset (vip.NoAccept, fwpair's forwarding gate
// and its replicated ruleset). It is a runtime helper, not a test lab.
package nft

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// maxMessage bounds how much of nft's stderr an error quotes: enough for
// the line and the caret nft prints under the offending token.
const maxMessage = 400

// Run feeds script to nft -f -, killed at ctx's end; nft applies a script
// as one transaction. The error starts "nft:" and quotes (the start of)
// what nft wrote to stderr.
func Run(ctx context.Context, nft, script string) error {
	return run(ctx, nft, "nft", script, "-f", "-")
}

// Check feeds script to nft -c -f -: nft parses it and asks the kernel to
// validate it without committing anything. The error starts "nft -c:".
func Check(ctx context.Context, nft, script string) error {
	return run(ctx, nft, "nft -c", script, "-c", "-f", "-")
}

func run(ctx context.Context, nft, what, script string, args ...string) error {
	cmd := exec.CommandContext(ctx, nft, args...)
	cmd.Stdin = strings.NewReader(script)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 100 * time.Millisecond // a child holding stderr open must not keep Wait waiting
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			if len(msg) > maxMessage {
				msg = msg[:maxMessage] + "..."
			}
			return fmt.Errorf("%s: %w: %s", what, err, msg)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
