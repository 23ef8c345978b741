package seal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"strconv"
	"time"

	"github.com/gocarp/gocarp/internal/atomicfile"
)

// BootCounter returns this start's boot value and stores it durably at
// path: one more than the value stored there, and at least the wall clock in
// whole seconds since 1970 (UTC). A missing file counts as 0. The update is
// atomic: the new value is written to a temporary file in the same
// directory, synced, renamed over path, and the directory is synced, so a
// crash leaves either the old or the new value.
//
// Call it once per start and pass the result as Config.Boot. Receivers
// refuse frames from boots older than the newest they have authenticated,
// which is what makes a recording of an earlier run useless. The clock
// floor is what lets a node whose file was lost or rolled back (a virtual
// machine restored from a snapshot, a replaced disk) be heard again without
// any peer restarting: its next boot is still above every boot it used
// before, unless its clock went back too, or it had restarted faster than
// once a second just before. The file keeps boots growing when the clock
// does not (a clock reset, several starts in one second). A file that
// cannot be read or parsed is an error, never silently reset.
func BootCounter(path string) (uint32, error) {
	var n uint64
	b, err := readBoot(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return 0, fmt.Errorf("seal: boot counter: %w", err)
	default:
		n, err = strconv.ParseUint(string(bytes.TrimSpace(b)), 10, 32)
		if err != nil {
			return 0, fmt.Errorf("seal: boot counter %s holds %q, not a decimal counter; refusing to reset it (fix or remove the file knowingly): %w", path, b, err)
		}
	}
	if n >= math.MaxUint32 {
		return 0, fmt.Errorf("seal: boot counter %s exhausted at %d", path, n)
	}
	n = max(n+1, clockFloor(time.Now()))
	if err := atomicfile.Write(path, []byte(strconv.FormatUint(n, 10)+"\n")); err != nil {
		return 0, fmt.Errorf("seal: boot counter: %w", err)
	}
	return uint32(n), nil
}

// maxBootFile is the most of a boot file that is read: a 32-bit decimal
// counter and a newline take 11 bytes, and a few more allow for spaces. A
// longer file is not ours, and reading all of it could cost its size.
const maxBootFile = 32

// readBoot returns the content of the boot file at path, at most
// maxBootFile bytes of it; a longer file is an error that quotes only its
// start.
func readBoot(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxBootFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxBootFile {
		return nil, fmt.Errorf("%s is longer than %d bytes (starts %q), not a boot counter", path, maxBootFile, b[:16])
	}
	return b, nil
}

// clockFloor is the least boot value a start at now may use: its Unix time
// in seconds, or 0 for a clock before 1970 or beyond what 32 bits hold
// (year 2106), which then leaves the file alone to keep boots growing.
func clockFloor(now time.Time) uint64 {
	s := now.Unix()
	if s <= 0 || s >= math.MaxUint32 {
		return 0
	}
	return uint64(s)
}
