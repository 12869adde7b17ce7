package oga

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"guestagent.io/operator/agentd/guest"
)

// FuzzDecode feeds arbitrary bytes, cut into chunks of a fuzzed size, through the splitter,
// decoder and message handlers. It checks that nothing panics, memory stays bounded, every
// string that reaches the model is valid UTF-8 without XML-invalid characters, and that the
// decoder accepts exactly the JSON objects encoding/json accepts (up to our depth cap).
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"__name__": "heartbeat", "free-ram": "23623", "memory-stat": {"mem_total": 24684092}, "apiVersion": 3}` + "\n",
		`{"__name__": "disks-usage", "disks": [{"path": "/", "total": 18446744073709551615, "used": 1, "fs": "ext4"}], "mapping": {"s": {"name": "/dev/vda"}}}` + "\n",
		`{"__name__": "active-user", "name": "None"}` + "\r\n" + `{"__name__": "host-name", "name": "a\u0000b\ud800"}` + "\n",
		`{"__name__": "network-interfaces", "interfaces": [{"name": "eth0", "hw": "AA", "inet": ["1.2.3.4"]}]}` + "\n",
		`{"__name__": "os-info", "type": "windows"}` + "\n[1]\n{}\n\n" + `{"__name__":"heartbeat","apiVersion":"abc"}`,
		"{\"\xff\": \"\xed\xa0\x80\"}\n",
		`{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}` + "\n",
		`{"__name__": "containers", "list": [{"id": "x", "names": ["a"]}]}` + "\n" + `{"__name__": "completion", "reply_id": "r", "done": true}` + "\n",
	} {
		f.Add([]byte(s), uint16(7))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint16) {
		// Watchdog: a hang becomes a crash with every goroutine's stack, so the fuzzer keeps it.
		watchdog := time.AfterFunc(10*time.Second, func() {
			buf := make([]byte, 1<<20)
			panic("FuzzDecode hung:\n" + string(buf[:runtime.Stack(buf, true)]))
		})
		defer watchdog.Stop()
		const max = 4096 // small cap so the fuzzer reaches the oversize paths
		sp := newLineSplitter(max)
		var d decoder
		var m model
		api := 0
		step := int(chunk)%512 + 1
		for off := 0; off < len(data); off += step {
			sp.feed(data[off:min(off+step, len(data))], func(line []byte) {
				if len(line) >= max {
					t.Fatalf("line of %d bytes passed the cap", len(line))
				}
				r := m.handleLine(&d, line, &api, time.Unix(0, 0))
				if len(d.arena)+len(d.stack) > len(line)+1 {
					t.Fatalf("arena %d for a %d-byte line", len(d.arena)+len(d.stack), len(line))
				}
				checkAgreement(t, line, r.err)
				if api < 0 || api > MaxAPIVersion {
					t.Fatalf("api %d", api)
				}
			}, func() {})
			if sp.pending() >= max {
				t.Fatalf("pending %d", sp.pending())
			}
		}
		checkStrings(t, m.info.DeepCopy())
	})
}

func checkAgreement(t *testing.T, line []byte, err error) {
	if err == errDepth || err == errNoName {
		return
	}
	trimmed := strings.TrimLeft(string(line), " \t\r\n")
	isObj := strings.HasPrefix(trimmed, "{") && json.Valid(line)
	if (err == nil) != isObj {
		t.Fatalf("decoder err=%v but encoding/json object=%v for %q", err, isObj, line)
	}
}

func checkStrings(t *testing.T, i *guest.Info) {
	var all []string
	if i.Hostname != nil {
		all = append(all, i.Hostname.Name, i.Hostname.FQDN)
	}
	if i.OS != nil {
		all = append(all, i.OS.Name, i.OS.KernelRelease, i.OS.Version, i.OS.Variant)
	}
	if i.Users != nil {
		for _, u := range i.Users.List {
			all = append(all, u.Name, u.Domain)
		}
	}
	if i.Network != nil {
		for _, n := range i.Network.Interfaces {
			all = append(all, n.Name, n.MAC)
			all = append(all, n.IPv4...)
			all = append(all, n.IPv6...)
		}
	}
	if i.Applications != nil {
		all = append(all, i.Applications.List...)
	}
	if i.Disks != nil {
		for _, dm := range i.Disks.Mappings {
			all = append(all, dm.Serial, dm.Device)
		}
	}
	for _, s := range all {
		if !utf8.ValidString(s) {
			t.Fatalf("invalid UTF-8 in model: %q", s)
		}
		for _, r := range s {
			if xmlInvalid(r) {
				t.Fatalf("XML-invalid U+%04X in model: %q", r, s)
			}
		}
	}
}
