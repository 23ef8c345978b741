package seal

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
)

// KeySize is the size of a pre-shared key: 256 bits for AES-256.
const KeySize = 32

// maxKeyFile bounds what LoadKeyFile reads; a key file is tiny.
const maxKeyFile = 4096

// GenerateKey returns a new random pre-shared key from crypto/rand.
func GenerateKey() ([]byte, error) {
	for {
		k := make([]byte, KeySize)
		if _, err := rand.Read(k); err != nil {
			return nil, fmt.Errorf("seal: generating key: %w", err)
		}
		// A random key fails checkKey with probability below 1e-13;
		// drawing again keeps LoadKeyFile from refusing what we wrote.
		if checkKey(k) == nil {
			return k, nil
		}
	}
}

// WriteKeyFile stores key in a new file at path as 64 hexadecimal digits and
// a newline, with mode 0600. It refuses to overwrite an existing file, so a
// cluster key is never replaced by accident.
func WriteKeyFile(path string, key []byte) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("seal: key file %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("seal: key file: %w", err)
	}
	_, werr := f.WriteString(hex.EncodeToString(key) + "\n")
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return fmt.Errorf("seal: key file %s: %w", path, errors.Join(err, os.Remove(path)))
	}
	return nil
}

// LoadKeyFile reads a pre-shared key from path. The file holds exactly
// KeySize raw bytes, or their encoding as 64 hexadecimal digits or as base64
// (standard or URL alphabet, padded or not), surrounding white space
// ignored. The file must be a regular file that neither group nor others may
// read or write (mode 0600 or 0400), and the key must look random.
func LoadKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("seal: key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("seal: key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("seal: key file %s is not a regular file (%v)", path, fi.Mode())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("seal: key file %s is accessible by group or others (mode %04o); make it 0600 or 0400", path, perm)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("seal: key file %s: %w", path, err)
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("seal: key file %s is longer than %d bytes; want a %d-byte key", path, maxKeyFile, KeySize)
	}
	key, err := parseKey(b)
	if err != nil {
		return nil, fmt.Errorf("seal: key file %s: %w", path, err)
	}
	return key, nil
}

// parseKey decodes the content of a key file and checks the key.
func parseKey(b []byte) ([]byte, error) {
	key := b
	if len(b) != KeySize {
		t := bytes.TrimSpace(b)
		key = nil
		if len(t) == 2*KeySize {
			if k, err := hex.DecodeString(string(t)); err == nil {
				key = k
			}
		}
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if key != nil {
				break
			}
			if k, err := enc.DecodeString(string(t)); err == nil && len(k) == KeySize {
				key = k
			}
		}
		if key == nil {
			return nil, fmt.Errorf("%d bytes are neither %d raw bytes nor the hex or base64 of %d bytes", len(b), KeySize, KeySize)
		}
	}
	if err := checkKey(key); err != nil {
		return nil, err
	}
	return bytes.Clone(key), nil
}

// checkKey refuses keys of the wrong size and keys that are not random: few
// distinct byte values (zeros, repeated patterns) or only printable ASCII (a
// passphrase). Each test fails a random key with probability below 1e-13.
func checkKey(key []byte) error {
	if len(key) != KeySize {
		return fmt.Errorf("key has %d bytes, want %d", len(key), KeySize)
	}
	var seen [256]bool
	distinct, printable := 0, true
	for _, c := range key {
		if !seen[c] {
			seen[c] = true
			distinct++
		}
		if c < 0x20 || c > 0x7e {
			printable = false
		}
	}
	if distinct < 16 {
		return fmt.Errorf("weak key: only %d distinct byte values; use a random key (seal.GenerateKey)", distinct)
	}
	if printable {
		return fmt.Errorf("weak key: only printable characters, like a passphrase; use a random key (seal.GenerateKey)")
	}
	return nil
}
