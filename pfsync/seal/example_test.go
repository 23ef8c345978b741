package seal_test

import (
	"errors"
	"fmt"

	"github.com/gocarp/gocarp/pfsync"
	"github.com/gocarp/gocarp/pfsync/seal"
)

// Two nodes sharing a pre-shared key. In production the key comes from
// seal.LoadKeyFile and the boot counter from seal.BootCounter.
func Example() {
	psk, err := seal.GenerateKey()
	if err != nil {
		fmt.Println(err)
		return
	}
	keys := []seal.Key{{ID: 1, Secret: psk}}
	a, err := seal.New(seal.Config{Node: 1, Boot: 1, Keys: keys, SendKeyID: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	b, err := seal.New(seal.Config{Node: 2, Boot: 1, Keys: keys, SendKeyID: 1})
	if err != nil {
		fmt.Println(err)
		return
	}

	frame, err := a.Seal(nil, []byte("state updates"))
	if err != nil {
		fmt.Println(err)
		return
	}
	from, plain, err := b.Open(nil, frame)
	fmt.Println(from, string(plain), err)

	// The same frame again is a replay.
	_, _, err = b.Open(nil, frame)
	fmt.Println(errors.Is(err, pfsync.ErrReplay))
	// Output:
	// 1 state updates <nil>
	// true
}
