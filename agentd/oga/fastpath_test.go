package oga

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"guestagent.io/operator/agentd/guest"
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

// FuzzDisksUsageInPlace checks the in-place update of disks-usage against a rebuild: a model that
// saw prev and then cur must hold the same Filesystems and Disks as a fresh model that saw only
// cur, and report a change exactly when they differ from what prev left.
func FuzzDisksUsageInPlace(f *testing.F) {
	f.Add(`[{"path": "/", "total": 10, "used": 5, "fs": "xfs"}, {"path": "/boot", "fs": "xfs"}]`, `{"s1": {"name": "/dev/vda"}, "s0": {"name": "/dev/vdb"}}`,
		`[{"path": "/", "total": 10, "used": 6, "fs": "xfs"}, 1, {"path": "/boot", "fs": "xfs", "total": "3", "used": 1}]`, `{"s0": {"name": "/dev/vdb"}, "s1": {"name": "/dev/vda"}, "s1": {"name": "/dev/vdc"}}`)
	f.Add(`[{"path": "/", "total": 10, "used": 5}]`, `{}`, `[{"path": "/", "total": 10, "used": 5}]`, `{"a": 1, "a": {"name": 2}}`)
	f.Add(`[]`, `null`, `[{"path": "/\u0000"}]`, `[]`)
	mk := func(disks, mapping string) []byte {
		return []byte(`{"__name__": "disks-usage", "disks": ` + disks + `, "mapping": ` + mapping + `}`)
	}
	f.Fuzz(func(t *testing.T, disks0, map0, disks1, map1 string) {
		var inPlace, fresh model
		var d decoder
		api := 0
		inPlace.handleLine(&d, mk(disks0, map0), &api, time.Unix(0, 0))
		before := inPlace.info.DeepCopy()
		r := inPlace.handleLine(&d, mk(disks1, map1), &api, time.Unix(0, 0))
		fresh.handleLine(&d, mk(disks1, map1), &api, time.Unix(0, 0))
		if r.err != nil {
			return
		}
		if !reflect.DeepEqual(inPlace.info.Filesystems, fresh.info.Filesystems) || !reflect.DeepEqual(inPlace.info.Disks, fresh.info.Disks) {
			t.Fatalf("in place %+v %+v, rebuilt %+v %+v", inPlace.info.Filesystems, inPlace.info.Disks, fresh.info.Filesystems, fresh.info.Disks)
		}
		want := !reflect.DeepEqual(before.Filesystems, fresh.info.Filesystems) || !reflect.DeepEqual(before.Disks, fresh.info.Disks)
		if r.changed != want {
			t.Fatalf("changed %v, want %v (before %+v %+v)", r.changed, want, before.Filesystems, before.Disks)
		}
	})
}

// TestPrettyName checks that reusing the current PrettyName gives what concatenating would.
func TestPrettyName(t *testing.T) {
	for _, c := range [][3]string{
		{"Red Hat Enterprise Linux", "8.9", "Red Hat Enterprise Linux 8.9"}, {"Debian", "", "Debian"},
		{"", "", ""}, {" a", "b\u00a0", "a b"}, {"a", "b", "a b "}, {"\u2003x", "", "x"}, {"x", "y", "x  y"},
	} {
		want := strings.TrimSpace(c[0] + " " + c[1])
		if got := prettyName(c[0], c[1], &guest.OS{PrettyName: c[2]}); got != want {
			t.Errorf("%q: got %q, want %q", c, got, want)
		}
		if got := prettyName(c[0], c[1], nil); got != want {
			t.Errorf("%q (no current): got %q, want %q", c, got, want)
		}
	}
}
