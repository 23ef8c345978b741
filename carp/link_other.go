//go:build !linux

package carp

import (
	"errors"
	"fmt"
	"log/slog"
)

// LinkWatcher reports the link state of an interface. It is implemented on
// Linux only; elsewhere NewLinkWatcher returns errors.ErrUnsupported.
type LinkWatcher struct{}

// NewLinkWatcher returns an error wrapping errors.ErrUnsupported.
func NewLinkWatcher(ifname string, fn func(up bool), logger *slog.Logger) (*LinkWatcher, error) {
	return nil, fmt.Errorf("carp: link watcher on %s: %w", ifname, errors.ErrUnsupported)
}

// Up returns false.
func (w *LinkWatcher) Up() bool { return false }

// Close does nothing.
func (w *LinkWatcher) Close() error { return nil }
