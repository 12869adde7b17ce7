package oga

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// FuzzHeartbeatFastPath checks the heartbeat fast path against the general path: on arbitrary
// lines (fed one after another to two models), handleLine (fast path first) and
// handleLineGeneral must give the same result, model and negotiated version after every line.
func FuzzHeartbeatFastPath(f *testing.F) {
	for _, s := range []string{
		`{"__name__": "heartbeat", "memory-stat": {"swap_out": 0, "majflt": 3, "swap_usage": 0, "mem_cached": 2100000, "mem_free": 6004200, "mem_buffers": 4200, "swap_in": 0, "swap_total": 2097148, "pageflt": 1234, "mem_total": 7886516, "mem_unused": 3900000}, "free-ram": "5863", "apiVersion": 3}`,
		`{"__name__":"heartbeat","free-ram":"23623","memory-stat":{"mem_total":24684092,"mem_free":1.5e3,"mem_free":"7","mem_unused":-1},"apiVersion":"2"}`,
		`{"__name__": "heartbeat", "memory-stat": {"mem_total": 18446744073709551615, "mem_free": 18446744073709551616, "swap_total": 01}}`,
		`{"__name__": "heartbeat", "memory-stat": null, "free-ram": 12.9, "apiVersion": true}` + "\n" + `{"__name__": "heartbeat", "memory-stat": {}, "memory-stat": 1}`,
		`{"__name__": "heartbeat", "__name__": "active-user", "name": "x"}` + "\n" + `{"__name__": "heartbeat" , "m\u0065mory-stat" : { "mem_\u0066ree" : 5 } , "__name__" : "heartbe\u0061t" }  `,
		`{"__name__": "heartbeat", "apiVersion": [1], "free-ram": "-5"}` + "\n" + `{"__name__": "heartbeat", "memory-stat": {"mem_total": 1}, "x": [1, {"a": "\ud800"}]} x`,
		`{"__name__": "heartbeat"}` + "\n" + `{"__name__": "heartbeat", "apiVersion": 0}` + "\n" + `{"__name__": "heartbeat", "memory-stat": {"mem_total": 1,}}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		var fast, gen model
		var df, dg decoder
		apiF, apiG := 0, 0
		for _, line := range strings.Split(data, "\n") {
			rf := fast.handleLine(&df, []byte(line), &apiF, time.Unix(0, 0))
			rg := gen.handleLineGeneral(&dg, []byte(line), &apiG, time.Unix(0, 0))
			if !reflect.DeepEqual(rf, rg) {
				t.Fatalf("%q: fast %+v, general %+v", line, rf, rg)
			}
			if apiF != apiG || !reflect.DeepEqual(fast, gen) {
				t.Fatalf("%q: fast api %d model %+v, general api %d model %+v", line, apiF, fast, apiG, gen)
			}
		}
	})
}

// TestNotPlain8 checks the 8-bytes-at-a-time string scan against the byte table, for every byte
// value at every position, behind every kind of preceding byte (borrows run upwards).
func TestNotPlain8(t *testing.T) {
	for c := 0; c < 256; c++ {
		for pos := 0; pos < 8; pos++ {
			for _, fill := range []byte{'a', 0x00, 0x1f, '"', '\\', 0x7f, 0x80, 0xff, ' '} {
				b := []byte("zzzzzzzzzzzzzzzz")
				for k := 0; k < pos; k++ {
					b[k] = 'x'
				}
				b[pos] = byte(c)
				for k := pos + 1; k < 8; k++ {
					b[k] = fill
				}
				want := 0
				for want < len(b) && plain[b[want]] {
					want++
				}
				if got := plainRun(b, 0); got != want {
					t.Fatalf("%q: plainRun %d, want %d", b, got, want)
				}
			}
		}
	}
}

// TestSmallUint checks the in-place integer reader against the general decoder.
func TestSmallUint(t *testing.T) {
	for _, s := range []string{"0", "7", "10", "0123", "1234567890123456789", "12345678901234567890",
		"-1", "1.5", "1e3", "1E3", "00", "", "x", "9999999999999999999", "5 "} {
		n, end, ok := smallUint([]byte(s), 0)
		var d decoder
		root, err := d.parse([]byte(`{"k":` + s + `}`))
		if !ok {
			continue // handed to the general decoder
		}
		v, _ := d.get(root, "k")
		want, wok := d.uintOf(v)
		if err != nil || !wok || want != n || strings.TrimSpace(s[end:]) != "" {
			t.Errorf("%q: smallUint %d end %d, general %d %v (parse %v)", s, n, end, want, wok, err)
		}
	}
}
