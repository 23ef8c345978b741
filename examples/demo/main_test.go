package main

import (
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args    []string
		want    options
		wantErr string // part of the error and of the output; "" for success
	}{
		{args: nil, want: defaultOptions()},
		{
			args: []string{"-nodes", "5", "-conns", "500", "-advbase", "2", "-advskew", "50", "-preempt=false", "-loss", "0.1", "-seed", "9"},
			want: options{Nodes: 5, Conns: 500, AdvBase: 2, AdvSkew: 50, Preempt: false, Loss: 0.1, Seed: 9,
				Protocol: "carp", Priority: 150, AdvertInt: time.Second},
		},
		{
			args: []string{"-protocol", "vrrp3", "-nodes", "3", "-priority", "100", "-advert-int", "250ms"},
			want: options{Nodes: 3, Conns: 10000, AdvBase: 1, AdvSkew: 100, Preempt: true, Seed: 1,
				Protocol: "vrrp3", Priority: 100, AdvertInt: 250 * time.Millisecond},
		},
		{args: []string{"-protocol", "vrrp2"}, wantErr: `-protocol "vrrp2" out of range (carp, vrrp3)`},
		{args: []string{"-protocol", "vrrp3", "-priority", "200"}, wantErr: "-priority 200 out of range 1-199 (with 2 nodes)"},
		{args: []string{"-protocol", "vrrp3", "-nodes", "5", "-priority", "60"}, wantErr: "-priority 60 out of range 61-199 (with 5 nodes)"},
		{args: []string{"-protocol", "vrrp3", "-advert-int", "15ms"}, wantErr: "-advert-int 15ms out of range 10ms-40.95s in steps of 10ms"},
		{args: []string{"-protocol", "vrrp3", "-advbase", "2"}, wantErr: "-advbase: not with -protocol vrrp3"},
		{args: []string{"-priority", "120"}, wantErr: "-priority: not with -protocol carp"},
		{args: []string{"-nodes", "1"}, wantErr: "-nodes 1 out of range 2-5"},
		{args: []string{"-nodes", "6"}, wantErr: "-nodes 6 out of range 2-5"},
		{args: []string{"-conns", "0"}, wantErr: "-conns 0 out of range 1-1000000"},
		{args: []string{"-advbase", "0"}, wantErr: "-advbase 0 out of range 1-255"},
		{args: []string{"-advskew", "0"}, wantErr: "-advskew 0 out of range 1-255 (with 2 nodes)"},
		{args: []string{"-nodes", "5", "-advskew", "200"}, wantErr: "-advskew 200 out of range 1-135 (with 5 nodes)"},
		{args: []string{"-loss", "0.6"}, wantErr: "-loss 0.6 out of range 0-0.5"},
		{args: []string{"-loss", "NaN"}, wantErr: "-loss NaN out of range 0-0.5"},
		{args: []string{"extra"}, wantErr: `unexpected argument "extra"`},
		{args: []string{"-bogus"}, wantErr: "flag provided but not defined: -bogus"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out strings.Builder
			got, err := parseFlags(tt.args, &out)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				if !strings.Contains(out.String(), tt.wantErr) || !strings.Contains(out.String(), "Usage:") {
					t.Errorf("output lacks the error or the usage:\n%s", out.String())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	var out strings.Builder
	_, err := parseFlags([]string{"-help"}, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("error = %v, want flag.ErrHelp", err)
	}
	for _, f := range []string{"-nodes", "-conns", "-advbase", "-advskew", "-preempt", "-loss", "-seed", "real time",
		"-protocol", "-priority", "-advert-int", "VRRPv3"} {
		if !strings.Contains(out.String(), f) {
			t.Errorf("usage lacks %q:\n%s", f, out.String())
		}
	}
}

func TestAdvSkew(t *testing.T) {
	o := options{Nodes: 5, AdvSkew: 100}
	var got []uint8
	for i := 1; i <= o.Nodes; i++ {
		got = append(got, o.advSkew(i))
	}
	if diff := cmp.Diff([]uint8{0, 100, 140, 180, 220}, got); diff != "" {
		t.Errorf("advskew by node (-want +got):\n%s", diff)
	}
}
