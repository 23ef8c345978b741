package seal

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestGenerateKey(t *testing.T) {
	a, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != KeySize || string(a) == string(b) {
		t.Fatalf("GenerateKey returned %x and %x", a, b)
	}
	if err := checkKey(a); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, content []byte, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "psk")
	if err := os.WriteFile(p, content, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // umask-proof
		t.Fatal(err)
	}
	return p
}

func TestLoadKeyFile(t *testing.T) {
	key := testKey(3)
	tests := []struct {
		name    string
		content []byte
		mode    os.FileMode
		wantErr string // substring; empty means success
	}{
		{"raw", key, 0o600, ""},
		{"raw read-only", key, 0o400, ""},
		{"hex", []byte(hex.EncodeToString(key)), 0o600, ""},
		{"hex upper case with newline", []byte(strings.ToUpper(hex.EncodeToString(key)) + "\n"), 0o600, ""},
		{"base64", []byte(base64.StdEncoding.EncodeToString(key) + "\n"), 0o600, ""},
		{"base64 raw url", []byte("  " + base64.RawURLEncoding.EncodeToString(key) + "\r\n"), 0o600, ""},
		{"group readable", key, 0o640, "is accessible by group or others (mode 0640); make it 0600 or 0400"},
		{"world readable", key, 0o604, "is accessible by group or others (mode 0604)"},
		{"short raw", key[:31], 0o600, "31 bytes are neither 32 raw bytes nor the hex or base64 of 32 bytes"},
		{"short hex", []byte(hex.EncodeToString(key[:16])), 0o600, "weak key: only printable characters"}, // 32 hex digits are taken as raw bytes
		{"long base64", []byte(base64.StdEncoding.EncodeToString(append(key, 1))), 0o600, "neither 32 raw bytes"},
		{"empty", nil, 0o600, "0 bytes are neither"},
		{"zero key hex", []byte(strings.Repeat("00", 32)), 0o600, "weak key: only 1 distinct byte values"},
		{"passphrase", []byte("this is my cluster password 1234"), 0o600, "weak key: only printable characters"},
		{"pattern", []byte(hex.EncodeToString([]byte(strings.Repeat("\x01\x02\x03\x04", 8)))), 0o600, "weak key: only 4 distinct byte values"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, tt.content, tt.mode)
			got, err := LoadKeyFile(p)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(key, got); diff != "" {
					t.Errorf("key (-want +got):\n%s", diff)
				}
				return
			}
			if err == nil {
				t.Fatalf("LoadKeyFile succeeded with %x", got)
			}
			if !strings.HasPrefix(err.Error(), "seal: key file "+p) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q, want it to name the file and contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestLoadKeyFileNotRegular(t *testing.T) {
	if _, err := LoadKeyFile(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("directory: err = %v", err)
	}
	if _, err := LoadKeyFile(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: err = %v, want fs.ErrNotExist", err)
	}
}

func TestWriteKeyFile(t *testing.T) {
	key, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "psk")
	if err := WriteKeyFile(p, key); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o, want 0600", fi.Mode().Perm())
	}
	got, err := LoadKeyFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(key, got); diff != "" {
		t.Errorf("key (-want +got):\n%s", diff)
	}
	if err := WriteKeyFile(p, testKey(1)); !errors.Is(err, fs.ErrExist) {
		t.Errorf("overwrite: err = %v, want fs.ErrExist", err)
	}
	if err := WriteKeyFile(filepath.Join(t.TempDir(), "weak"), make([]byte, 32)); err == nil {
		t.Error("WriteKeyFile accepted an all-zero key")
	}
}

// TestBootCounter: starts within one second count up from the clock; the
// file holds the last value and nothing else is left in the directory.
func TestBootCounter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		p := filepath.Join(dir, "boot")
		now := uint32(time.Now().Unix()) // the bubble's clock: 2000-01-01
		var got []uint32
		for range 3 {
			n, err := BootCounter(p)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, n)
		}
		if diff := cmp.Diff([]uint32{now, now + 1, now + 2}, got); diff != "" {
			t.Errorf("counters (-want +got):\n%s", diff)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("%d\n", now+2); string(b) != want {
			t.Errorf("file holds %q, want %q", b, want)
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 1 {
			t.Errorf("directory holds %d entries, want only the counter (temporary file left behind?)", len(ents))
		}
	})
}

// TestBootCounterLostOrRolledBack: a deleted file, or one restored to an
// older value, still yields a boot above every boot used before, thanks to
// the clock; a file ahead of the clock keeps counting from the file.
func TestBootCounterLostOrRolledBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "boot")
		boot := func() uint32 {
			t.Helper()
			n, err := BootCounter(p)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		first := boot()
		time.Sleep(time.Minute)
		second := boot()
		time.Sleep(time.Minute)
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if afterLoss := boot(); afterLoss <= second {
			t.Errorf("boot after the file was lost = %d, want above %d", afterLoss, second)
		}
		time.Sleep(time.Minute)
		latest := boot()
		time.Sleep(time.Second)
		if err := os.WriteFile(p, fmt.Appendf(nil, "%d\n", first), 0o600); err != nil {
			t.Fatal(err)
		}
		if afterRollback := boot(); afterRollback <= latest {
			t.Errorf("boot after the file was rolled back to %d = %d, want above %d", first, afterRollback, latest)
		}
		ahead := uint32(time.Now().Unix()) + 1000
		if err := os.WriteFile(p, fmt.Appendf(nil, "%d\n", ahead), 0o600); err != nil {
			t.Fatal(err)
		}
		if got := boot(); got != ahead+1 {
			t.Errorf("boot after a file ahead of the clock = %d, want %d", got, ahead+1)
		}
	})
}

func TestClockFloor(t *testing.T) {
	for _, tt := range []struct {
		now  time.Time
		want uint64
	}{
		{time.Unix(1_800_000_000, 5e8), 1_800_000_000},
		{time.Unix(0, 0), 0},
		{time.Unix(-5, 0), 0},
		{time.Unix(math.MaxUint32, 0), 0},
		{time.Unix(math.MaxUint32-1, 0), math.MaxUint32 - 1},
	} {
		if got := clockFloor(tt.now); got != tt.want {
			t.Errorf("clockFloor(%v) = %d, want %d", tt.now.UTC(), got, tt.want)
		}
	}
}

func TestBootCounterErrors(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    string
	}{
		{"garbage", "abc\n", `holds "abc\n", not a decimal counter; refusing to reset it`},
		{"empty", "", `holds "", not a decimal counter`},
		{"negative", "-1", "not a decimal counter"},
		{"too large", "4294967296", "not a decimal counter"},
		{"exhausted", "4294967295", "exhausted at 4294967295"},
		// Read bounded: only the start of a long file is read and quoted.
		{"long", "1" + strings.Repeat(" ", 1<<20), `longer than 32 bytes (starts "1               "), not a boot counter`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, []byte(tt.content), 0o600)
			n, err := BootCounter(p)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("BootCounter = %d, %v; want an error containing %q", n, err, tt.want)
			}
			b, rerr := os.ReadFile(p)
			if rerr != nil || string(b) != tt.content {
				t.Errorf("file changed to %q (%v)", b, rerr)
			}
		})
	}
	if _, err := BootCounter(filepath.Join(t.TempDir(), "missing-dir", "boot")); err == nil {
		t.Error("BootCounter in a missing directory succeeded")
	}
}
