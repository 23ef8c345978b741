package carp_test

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/gocarp/gocarp/carp"
)

// Encode and sign an advertisement the way ucarp 1.5.2 sends it.
func ExampleAdvertisement_MarshalBinary() {
	auth, err := carp.NewAuthenticator([]byte("secret"), 1,
		[]netip.Addr{netip.MustParseAddr("10.200.200.254")})
	if err != nil {
		fmt.Println(err)
		return
	}
	adv := carp.Advertisement{VHID: 1, AdvBase: 1, Counter: 0x0cf4a0fbab7f4483}
	auth.Sign(&adv)
	b, err := adv.MarshalBinary()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%x\n", b)
	// Output:
	// 2101000700013fc80cf4a0fbab7f4483d636c3ff3b278a02902863d3fc94245e94a0f84b
}

// Decode a received payload, telling VRRP apart from malformed CARP.
func ExampleAdvertisement_UnmarshalBinary() {
	vrrp3 := []byte{0x31, 0x01, 0x64, 0x01, 0x00, 0x64, 0x00, 0x00, 10, 200, 200, 254}
	var adv carp.Advertisement
	err := adv.UnmarshalBinary(vrrp3)
	switch {
	case errors.Is(err, carp.ErrVRRP):
		fmt.Println("VRRP, ignored")
	case err != nil:
		fmt.Println("malformed:", err)
	default:
		fmt.Println("CARP vhid", adv.VHID)
	}
	// Output: VRRP, ignored
}
