//go:build !linux

package main

import (
	"context"
	"errors"
)

// liberalize exists only on Linux.
func liberalize(context.Context) (int, error) { return 0, errors.ErrUnsupported }
