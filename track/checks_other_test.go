//go:build !linux

package track

import (
	"errors"
	"time"
)

func mkfifo(string) error { return errors.ErrUnsupported }

func watchExit(int) (func(time.Duration) error, error) { return nil, errors.ErrUnsupported }
