//go:build !linux

package conntrack

import (
	"context"
	"errors"
	"fmt"

	"github.com/gocarp/gocarp/pfsync/record"
)

var errUnsupported = fmt.Errorf("conntrack: Linux conntrack backend: %w", errors.ErrUnsupported)

// Backend replicates the Linux conntrack table; on this OS every method
// returns an error wrapping errors.ErrUnsupported.
type Backend struct{}

// New returns an error wrapping errors.ErrUnsupported on this OS.
func New(cfg Config) (*Backend, error) {
	if _, err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	return nil, errUnsupported
}

// Start returns an error wrapping errors.ErrUnsupported.
func (b *Backend) Start(sink Sink) error { return errUnsupported }

// Resync returns an error wrapping errors.ErrUnsupported.
func (b *Backend) Resync(ctx context.Context) error { return errUnsupported }

// Close does nothing.
func (b *Backend) Close() error { return nil }

// Stats returns zero counters.
func (b *Backend) Stats() Stats { return Stats{} }

// Insert returns an error wrapping errors.ErrUnsupported.
func (b *Backend) Insert(rec *record.Record) error { return errUnsupported }

// Update returns an error wrapping errors.ErrUnsupported.
func (b *Backend) Update(rec *record.Record) error { return errUnsupported }

// Delete returns an error wrapping errors.ErrUnsupported.
func (b *Backend) Delete(id record.ID) error { return errUnsupported }

// Commit returns an error wrapping errors.ErrUnsupported.
func (b *Backend) Commit(ctx context.Context, recs []record.Record) (CommitResult, error) {
	return CommitResult{}, errUnsupported
}

// CommitBatch sets every error to one wrapping errors.ErrUnsupported.
func (b *Backend) CommitBatch(ctx context.Context, recs []record.Record, errs []error) {
	for i := range errs {
		errs[i] = errUnsupported
	}
}

// Purge returns an error wrapping errors.ErrUnsupported.
func (b *Backend) Purge(ctx context.Context) (int, error) { return 0, errUnsupported }

// Takeover returns an error wrapping errors.ErrUnsupported.
func (b *Backend) Takeover(ctx context.Context) (int, error) { return 0, errUnsupported }
