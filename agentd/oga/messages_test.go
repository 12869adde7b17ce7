package oga

import (
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"guestagent.io/operator/agentd/guest"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// apply feeds lines to a fresh (or given) model and returns the last result.
func apply(m *model, api *int, lines ...string) lineResult {
	var d decoder
	var r lineResult
	for _, l := range lines {
		r = m.handleLine(&d, []byte(l), api, t0)
	}
	return r
}

func TestMessagesToInfo(t *testing.T) {
	var m model
	api := 0
	apply(&m, &api,
		`{"__name__": "host-name", "name": "vm-042.lab.example.com"}`,
		`{"__name__": "fqdn", "fqdn": "vm-042.lab.example.com"}`,
		`{"__name__": "os-version", "version": "4.18.0-513.24.1.el8_9.x86_64"}`,
		`{"kernel": "4.18.0-513.24.1.el8_9.x86_64", "type": "linux", "version": "8.9", "__name__": "os-info", "distribution": "Red Hat Enterprise Linux", "arch": "x86_64", "codename": "Ootpa"}`,
		`{"__name__": "timezone", "zone": "Europe/Prague", "offset": 60}`,
		`{"__name__": "network-interfaces", "interfaces": [{"hw": "56:6F:1A:2B:00:2A", "inet6": ["fe80::1"], "inet": ["10.10.0.42"], "name": "eth0"}, {"name": "eth1", "hw": "aa:bb:cc:dd:ee:ff"}]}`,
		`{"applications": ["kernel-4.18", "podman-4.6"], "__name__": "applications"}`,
		`{"__name__": "active-user", "name": "alice"}`,
		`{"__name__": "session-lock"}`,
		`{"__name__": "disks-usage", "disks": [{"path": "/", "total": 18446744073709551615, "used": 17709355008, "fs": "ext4"}, {"path": "/boot", "fs": "xfs"}], "mapping": {"serial-b": {"name": "/dev/vdb"}, "serial-a": {"name": "/dev/vda"}}}`,
		`{"__name__": "number-of-cpus", "count": 4}`,
		`{"__name__": "containers", "list": [{"id": "abc", "names": ["web"], "image": "nginx", "status": "Up", "command": "nginx -g"}]}`,
		`{"__name__":"heartbeat","free-ram":"23623","memory-stat":{"mem_total":24684092,"mem_unused":21210384,"mem_free":24190136,"mem_buffers":32640,"mem_cached":2947112,"swap_in":3,"swap_out":4,"pageflt":120,"majflt":2,"swap_usage":10,"swap_total":20},"apiVersion":0}`,
	)
	want := &guest.Info{
		Hostname: &guest.Hostname{Name: "vm-042.lab.example.com", FQDN: "vm-042.lab.example.com"},
		OS: &guest.OS{Type: guest.OSTypeLinux, Name: "Red Hat Enterprise Linux", Version: "8.9", VersionID: "8.9",
			PrettyName: "Red Hat Enterprise Linux 8.9", Variant: "Ootpa", KernelRelease: "4.18.0-513.24.1.el8_9.x86_64", Arch: "x86_64"},
		Timezone: &guest.Timezone{Zone: "Europe/Prague", OffsetMinutes: 60},
		Users:    &guest.Users{List: []guest.User{{Name: "alice", LoginTime: t0}}},
		Session:  &guest.Session{State: guest.SessionLocked, LastLogin: t0},
		Network: &guest.Network{Interfaces: []guest.Interface{
			{Name: "eth0", MAC: "56:6f:1a:2b:00:2a", IPv4: []string{"10.10.0.42"}, IPv6: []string{"fe80::1"}},
			{Name: "eth1", MAC: "aa:bb:cc:dd:ee:ff", IPv4: []string{}, IPv6: []string{}}}},
		Filesystems: &guest.Filesystems{List: []guest.Filesystem{
			{Mountpoint: "/", Type: "ext4", TotalBytes: 1<<64 - 1, UsedBytes: 17709355008, HasUsage: true},
			{Mountpoint: "/boot", Type: "xfs"}}},
		Disks:        &guest.Disks{Mappings: []guest.DiskMapping{{Serial: "serial-a", Device: "/dev/vda"}, {Serial: "serial-b", Device: "/dev/vdb"}}},
		VCPUs:        &guest.VCPUs{Online: 4},
		Applications: &guest.Applications{List: []string{"kernel-4.18", "podman-4.6"}},
		Containers:   &guest.Containers{List: []guest.Container{{ID: "abc", Names: []string{"web"}, Image: "nginx", Status: "Up", Command: "nginx -g"}}},
		Memory: &guest.Memory{TotalBytes: 24684092 * 1024, FreeBytes: 24190136 * 1024, UnusedBytes: 21210384 * 1024,
			BuffersBytes: 32640 * 1024, CachedBytes: 2947112 * 1024, SwapTotalBytes: 20 * 1024, SwapUsedBytes: 10 * 1024,
			HasRates: true, SwapInRate: 3, SwapOutRate: 4, PageFaultRate: 120, MajorPageFaultRate: 2},
	}
	if got := m.info.DeepCopy(); !reflect.DeepEqual(got, want) {
		t.Fatalf("info mismatch\n got %+v\nwant %+v", got, want)
	}
}

func TestSessionsAndUsers(t *testing.T) {
	var m model
	api := 0
	for _, c := range []struct {
		msg   string
		state guest.SessionState
	}{
		{MsgSessionLogon, guest.SessionLoggedOn}, {MsgSessionLock, guest.SessionLocked},
		{MsgSessionUnlock, guest.SessionActive}, {MsgSessionLogoff, guest.SessionLoggedOff},
	} {
		if r := apply(&m, &api, `{"__name__":"`+c.msg+`"}`); !r.changed || m.info.Session.State != c.state {
			t.Fatalf("%s: %+v %v", c.msg, r, m.info.Session)
		}
	}
	for _, n := range []string{MsgSessionStartup, MsgSessionShutdown} {
		if r := apply(&m, &api, `{"__name__":"`+n+`"}`); r.changed || r.unknown || !r.valid {
			t.Fatalf("%s: %+v", n, r)
		}
	}
	// No user → empty list, not a user named "None".
	apply(&m, &api, `{"__name__":"active-user","name":"None"}`)
	if m.info.Users == nil || len(m.info.Users.List) != 0 {
		t.Fatalf("None: %+v", m.info.Users)
	}
	// "Unknown" while "None": ignored (VDSM rule).
	if r := apply(&m, &api, `{"__name__":"active-user","name":"Unknown"}`); r.changed || m.rawUser != "None" {
		t.Fatalf("Unknown after None changed state")
	}
	apply(&m, &api, `{"__name__":"active-user","name":"bob@CORP.EXAMPLE"}`)
	if u := m.info.Users.List; len(u) != 1 || u[0].Name != "bob" || u[0].Domain != "CORP.EXAMPLE" {
		t.Fatalf("windows user: %+v", u)
	}
	if r := apply(&m, &api, `{"__name__":"active-user","name":"bob@CORP.EXAMPLE"}`); r.changed {
		t.Fatal("same user reported as change")
	}
	apply(&m, &api, `{"__name__":"active-user","name":"None"}`)
	if s := m.info.Session; s.LastUser != "bob@CORP.EXAMPLE" || s.LastLogout != t0 || len(m.info.Users.List) != 0 {
		t.Fatalf("logout: %+v", s)
	}
}

func TestApplicationsUninstalled(t *testing.T) {
	var m model
	api := 0
	apply(&m, &api, `{"__name__":"applications","applications":["a","b"]}`)
	if r := apply(&m, &api, `{"__name__":"applications","applications":["a","b"]}`); r.changed {
		t.Fatal("unchanged list reported as change")
	}
	if r := apply(&m, &api, `{"__name__":"uninstalled"}`); !r.changed || m.info.Applications == nil || len(m.info.Applications.List) != 0 {
		t.Fatalf("uninstalled: %+v", m.info.Applications)
	}
}

func TestListCap(t *testing.T) {
	var m model
	api := 0
	line := `{"__name__":"applications","applications":[` + repeatJoin(`"x"`, 100000) + `]}`
	apply(&m, &api, line)
	if n := len(m.info.Applications.List); n != MaxListEntries {
		t.Fatalf("stored %d", n)
	}
}

func repeatJoin(s string, n int) string {
	b := make([]byte, 0, n*(len(s)+1))
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, s...)
	}
	return string(b)
}

func TestWindowsOSVersion(t *testing.T) {
	var m model
	api := 0
	apply(&m, &api, `{"__name__":"os-version","version":"Win 2022 Server"}`)
	if m.info.OS.KernelRelease != "Win 2022 Server" || m.info.OS.Type != guest.OSTypeUnknown {
		t.Fatalf("%+v", m.info.OS)
	}
	apply(&m, &api, `{"__name__":"os-info","type":"windows","arch":"x86_64","version":"10.0.20348","distribution":"","codename":"","kernel":""}`)
	if os := m.info.OS; os.Type != guest.OSTypeWindows || os.Name != "Win 2022 Server" || os.ID != "mswindows" || os.KernelRelease != "" {
		t.Fatalf("%+v", os)
	}
}

func TestBadFieldsAreIgnoredIndividually(t *testing.T) {
	var m model
	api := 0
	// VDSM aborts the heartbeat handler at int("12.5"); we keep the rest of the message.
	apply(&m, &api, `{"__name__":"heartbeat","free-ram":"12.5","memory-stat":{"mem_total":"x","mem_unused":100},"apiVersion":3}`)
	if m.info.Memory == nil || m.info.Memory.UnusedBytes != 100*1024 || m.info.Memory.TotalBytes != 0 || api != 3 {
		t.Fatalf("%+v api %d", m.info.Memory, api)
	}
	for _, l := range []string{
		`{"__name__":"host-name","name":5}`, `{"__name__":"network-interfaces","interfaces":"x"}`,
		`{"__name__":"disks-usage","disks":[1,"a",null],"mapping":[]}`, `{"__name__":"number-of-cpus","count":-1}`,
		`{"__name__":"containers","list":{}}`, `{"__name__":"timezone","offset":"abc"}`,
	} {
		var d decoder
		r := m.handleLine(&d, []byte(l), &api, t0)
		if r.err != nil || !r.valid {
			t.Errorf("%s: %+v", l, r)
		}
	}
	if m.info.VCPUs != nil {
		t.Fatal("count -1 stored")
	}
}

func TestLineErrorsAndUnknown(t *testing.T) {
	var m model
	api := 0
	cases := []struct {
		line    string
		valid   bool
		unknown bool
	}{
		{`{"__name__":"heartbeat"`, false, false},
		{``, false, false},
		{`{"no":"name"}`, false, false},
		{`[1,2]`, false, false},
		{`{"__name__":5}`, true, true},
		{`{"__name__":"echo","x":"y"}`, true, true},
		{`{"__name__":"memory-stats","memory":{}}`, true, true},
		{`{"__name__":"bogus"}`, true, true},
		{`{"__name__":"session-startup"}`, true, false},
	}
	for _, c := range cases {
		r := apply(&m, &api, c.line)
		if r.valid != c.valid || r.unknown != c.unknown || (r.err == nil) != c.valid {
			t.Errorf("%q: %+v", c.line, r)
		}
	}
}

func TestNegotiation(t *testing.T) {
	cases := []struct {
		name    string
		start   int
		field   string // "" = absent
		want    int
		send    int
		changed bool
		invalid bool
	}{
		{"first heartbeat 0 from 0", 0, `0`, 0, 0, false, false},
		{"0 to 3 sends", 0, `3`, 3, 3, true, false},
		{"restored 3, first heartbeat 0: drop silently", 3, `0`, 0, 0, true, false},
		{"string 2", 0, `"2"`, 2, 2, true, false},
		{"string with spaces", 0, `" 2 "`, 2, 2, true, false},
		{"float 3.7", 0, `3.7`, 3, 3, true, false},
		{"7 clamps", 0, `7`, 3, 3, true, false},
		{"huge clamps", 0, `123456789012345678901234567890`, 3, 3, true, false},
		{"negative", 2, `-1`, 0, 0, true, false},
		{"bool true", 0, `true`, 1, 1, true, false},
		{"abc warns, 0", 3, `"abc"`, 0, 0, true, true},
		{"string 3.7 warns", 3, `"3.7"`, 0, 0, true, true},
		{"null ignored", 3, `null`, 3, 0, false, false},
		{"list ignored", 2, `[3]`, 2, 0, false, false},
		{"same version, nothing", 3, `3`, 3, 0, false, false},
		{"absent resets", 3, ``, 0, 0, true, false},
		{"absent at 0", 0, ``, 0, 0, false, false},
		{"1 from 3 sends 1", 3, `1`, 1, 1, true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var m model
			api := c.start
			line := `{"__name__":"heartbeat","free-ram":"1"}`
			if c.field != "" {
				line = `{"__name__":"heartbeat","free-ram":"1","apiVersion":` + c.field + `}`
			}
			r := apply(&m, &api, line)
			if api != c.want || r.sendVersion != c.send || r.apiChanged != c.changed || r.apiInvalid != c.invalid {
				t.Fatalf("api %d send %d changed %v invalid %v", api, r.sendVersion, r.apiChanged, r.apiInvalid)
			}
		})
	}
}

// TestLongStringsAreCapped: one huge string (or invalid UTF-8, which triples when replaced) does
// not pin megabytes in the model; cuts never split a character.
func TestLongStringsAreCapped(t *testing.T) {
	var m model
	api := 0
	huge := strings.Repeat("\xff", 300000) // 900 KB once replaced
	apply(&m, &api,
		`{"__name__": "host-name", "name": "`+huge+`"}`,
		`{"__name__": "applications", "applications": ["`+strings.Repeat("é", 3000)+`", "ok"]}`,
	)
	h := m.info.Hostname.Name
	if len(h) > MaxTextBytes || len(h) < MaxTextBytes-3 || !utf8.ValidString(h) {
		t.Fatalf("hostname kept %d bytes (valid UTF-8 %v), want ≤ %d", len(h), utf8.ValidString(h), MaxTextBytes)
	}
	apps := m.info.Applications.List
	if len(apps) != 2 || len(apps[0]) != MaxTextBytes || !utf8.ValidString(apps[0]) || apps[1] != "ok" {
		t.Fatalf("applications %d entries, first %d bytes", len(apps), len(apps[0]))
	}
}
