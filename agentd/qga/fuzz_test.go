package qga

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"libvirt.org/go/libvirt"

	"guestagent.io/operator/agentd/guest"
)

// Fuzz targets for every translation of an agent reply. The []byte targets take the "return"
// member of a reply exactly as DomainAPI.Raw and SocketAPI's decode receive it, decode it the
// way SocketAPI does (decode[T]) and translate it. FuzzLibvirtGuestInfo covers the typed path
// (libvirt's GetGuestInfo structs → fromLibvirtGuestInfo → translation) from fuzzed primitives.
// Seeds live in testdata/fuzz/<FuzzName>/: real qemu-ga 7.2 replies and hostile ones (nulls,
// wrong types, huge numbers, deep nesting, 100,000-entry lists).
//
// Properties: no panic; every output string is valid UTF-8; counts are never negative; a
// translated list never has more entries than the reply had (and so never more than the reply's
// byte length allows); sets are duplicate-free.

// walkStrings calls f with every string reachable from v (structs, pointers, slices, maps).
func walkStrings(v reflect.Value, f func(path, s string), path string) {
	switch v.Kind() {
	case reflect.String:
		f(path, v.String())
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkStrings(v.Elem(), f, path)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				walkStrings(v.Field(i), f, path+"."+v.Type().Field(i).Name)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			walkStrings(v.Index(i), f, path+"[]")
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			walkStrings(it.Key(), f, path+"{k}")
			walkStrings(it.Value(), f, path+"{v}")
		}
	}
}

// requireUTF8 fails when any string in out is not valid UTF-8.
func requireUTF8(t *testing.T, out any) {
	t.Helper()
	walkStrings(reflect.ValueOf(out), func(path, s string) {
		if !utf8.ValidString(s) {
			t.Errorf("%s: invalid UTF-8 %q", path, s)
		}
	}, reflect.TypeOf(out).String())
}

// requireBounded fails when a translated list is longer than the reply's list, or longer than
// the reply's byte length could encode (every JSON entry takes at least two bytes).
func requireBounded(t *testing.T, what string, got, in, rawLen int) {
	t.Helper()
	if got < 0 || got > in || (rawLen >= 0 && got > rawLen/2) {
		t.Errorf("%s: %d entries from a reply of %d entries / %d bytes", what, got, in, rawLen)
	}
}

// decodeOrSkip decodes raw like SocketAPI does; a reply that does not decode is an error to the
// caller (ErrAgentError), never translated, so there is nothing more to check.
func decodeOrSkip[T any](t *testing.T, cmd string, raw []byte) (T, bool) {
	v, err := decode[T](cmd, raw)
	if err != nil {
		if ClassOf(err) != ErrAgentError {
			t.Errorf("malformed %s reply: class %v, want AgentError", cmd, ClassOf(err))
		}
		return v, false
	}
	return v, true
}

var knownArch = []string{"x86", "x86_64", "ppc", "ppcle", "ppc64", "ppc64le", "aarch64", "s390x", "unknown"}

func checkOS(t *testing.T, in *OSInfo, out *guest.OS) {
	t.Helper()
	if out == nil {
		if in != nil && *in != (OSInfo{}) {
			t.Errorf("non-empty OS reply %+v translated to nil", *in)
		}
		return
	}
	requireUTF8(t, out)
	if !slices.Contains(knownArch, out.Arch) {
		t.Errorf("arch %q outside the known set", out.Arch)
	}
	if out.Type != guest.OSTypeLinux && out.Type != guest.OSTypeWindows && out.Type != guest.OSTypeUnknown {
		t.Errorf("OS type %q", out.Type)
	}
}

// FuzzParseAgentInfo: guest-info → AgentInfo → Caps.
func FuzzParseAgentInfo(f *testing.F) {
	f.Add([]byte(`{"version":"7.2.22","supported_commands":[{"name":"guest-ping","enabled":true,"success-response":true}]}`))
	f.Fuzz(checkParseAgentInfo)
}

// checkParseAgentInfo is FuzzParseAgentInfo's property check (TestHostileLargeReplies runs it too).
func checkParseAgentInfo(t *testing.T, raw []byte) {
	ai, err := ParseAgentInfo(raw)
	if err != nil {
		return
	}
	if ai.Version == "" && len(ai.SupportedCommands) == 0 {
		t.Fatal("accepted a guest-info reply with neither version nor commands")
	}
	c := newCaps(ai)
	requireUTF8(t, c)
	en := c.EnabledList()
	requireBounded(t, "enabled+disabled commands", len(en)+len(c.Disabled), len(ai.SupportedCommands), len(raw))
	if !slices.IsSorted(en) || !slices.IsSorted(c.Disabled) {
		t.Errorf("command lists not sorted: %q %q", en, c.Disabled)
	}
	if len(slices.Compact(slices.Clone(en))) != len(en) {
		t.Errorf("enabled commands not unique: %q", en)
	}
	for _, cmd := range en {
		if cmd == "" || !c.Enabled(cmd) {
			t.Errorf("EnabledList has %q but Enabled says no", cmd)
		}
	}
}

// FuzzTranslateOS: guest-get-osinfo.
func FuzzTranslateOS(f *testing.F) {
	f.Add([]byte(`{"name":"Debian GNU/Linux","kernel-release":"6.1.0","id":"debian","machine":"x86_64"}`))
	f.Fuzz(checkTranslateOS)
}

// checkTranslateOS is FuzzTranslateOS's property check (TestHostileLargeReplies runs it too).
func checkTranslateOS(t *testing.T, raw []byte) {
	in, ok := decodeOrSkip[*OSInfo](t, CmdOSInfo, raw)
	if !ok {
		return
	}
	checkOS(t, in, TranslateOS(in))
}

// FuzzTranslateHostname: guest-get-host-name.
func FuzzTranslateHostname(f *testing.F) {
	f.Add([]byte(`{"host-name":"vm"}`))
	f.Fuzz(checkTranslateHostname)
}

// checkTranslateHostname is FuzzTranslateHostname's property check (TestHostileLargeReplies runs it too).
func checkTranslateHostname(t *testing.T, raw []byte) {
	in, ok := decodeOrSkip[*HostName](t, CmdHostName, raw)
	if !ok {
		return
	}
	out := TranslateHostname(in)
	if out == nil {
		if in != nil && in.HostName != "" {
			t.Errorf("host name %q translated to nil", in.HostName)
		}
		return
	}
	requireUTF8(t, out)
	if out.Name == "" || out.Name != in.HostName {
		t.Errorf("host name %q → %+v", in.HostName, out)
	}
}

// FuzzTranslateTimezone: guest-get-timezone; the offset is floored to whole minutes.
func FuzzTranslateTimezone(f *testing.F) {
	f.Add([]byte(`{"zone":"UTC","offset":0}`))
	f.Fuzz(checkTranslateTimezone)
}

// checkTranslateTimezone is FuzzTranslateTimezone's property check (TestHostileLargeReplies runs it too).
func checkTranslateTimezone(t *testing.T, raw []byte) {
	in, ok := decodeOrSkip[*TimezoneInfo](t, CmdTimezone, raw)
	if !ok {
		return
	}
	out := TranslateTimezone(in)
	if out == nil {
		if in != nil && in.Offset != nil {
			t.Errorf("timezone with offset %d translated to nil", *in.Offset)
		}
		return
	}
	requireUTF8(t, out)
	// floor(offset/60) within the range where float64 is exact
	if off := *in.Offset; off > -1<<52 && off < 1<<52 {
		if m := out.OffsetMinutes; m*60 > off || (m+1)*60 <= off {
			t.Errorf("offset %d s → %d min, not the floor", off, m)
		}
	}
}

// FuzzTranslateUsers: guest-get-users. Login times are seconds since the epoch (float).
func FuzzTranslateUsers(f *testing.F) {
	f.Add([]byte(`[{"user":"root","login-time":1700000000.25}]`))
	f.Fuzz(checkTranslateUsers)
}

// checkTranslateUsers is FuzzTranslateUsers's property check (TestHostileLargeReplies runs it too).
func checkTranslateUsers(t *testing.T, raw []byte) {
	in, ok := decodeOrSkip[[]UserInfo](t, CmdUsers, raw)
	if !ok {
		return
	}
	out := TranslateUsers(in)
	if out == nil || out.List == nil {
		t.Fatal("a decoded users reply must translate to a non-nil list")
	}
	requireUTF8(t, out)
	requireBounded(t, "users", len(out.List), len(in), len(raw))
	j := 0
	for _, u := range in {
		if u.User == "" {
			continue
		}
		o := out.List[j]
		j++
		if o.Name != u.User {
			t.Fatalf("user %q became %q", u.User, o.Name)
		}
		// Login times a real guest can have (after 1970, before year 10000) are kept to
		// the second. Outside that range they are passed on unclamped (the publisher drops them).
		if u.LoginTime >= 1 && u.LoginTime < 253402300800 {
			if o.LoginTime.Unix() != int64(u.LoginTime) || o.LoginTime.Location() != time.UTC {
				t.Errorf("login time %v → %v", u.LoginTime, o.LoginTime)
			}
		} else if u.LoginTime <= 0 && !o.LoginTime.IsZero() {
			t.Errorf("login time %v → %v, want zero", u.LoginTime, o.LoginTime)
		}
	}
	if j != len(out.List) {
		t.Errorf("%d named users in, %d out", j, len(out.List))
	}
}

// FuzzTranslateFilesystems: guest-get-fsinfo → filesystems and the fallback disk mapping.
func FuzzTranslateFilesystems(f *testing.F) {
	f.Add([]byte(`[{"name":"vda1","mountpoint":"/","type":"ext4","total-bytes":10,"used-bytes":5,"disk":[{"serial":"s1","dev":"/dev/vda1"}]}]`))
	f.Fuzz(checkTranslateFilesystems)
}

// checkTranslateFilesystems is FuzzTranslateFilesystems's property check (TestHostileLargeReplies runs it too).
func checkTranslateFilesystems(t *testing.T, raw []byte) {
	in, ok := decodeOrSkip[[]FSInfo](t, CmdFSInfo, raw)
	if !ok {
		return
	}
	out := TranslateFilesystems(in)
	if out == nil || out.List == nil {
		t.Fatal("a decoded fsinfo reply must translate to a non-nil list")
	}
	requireUTF8(t, out)
	requireBounded(t, "filesystems", len(out.List), len(in), len(raw))
	disksIn := 0
	for _, fs := range in {
		disksIn += len(fs.Disk)
	}
	for _, fs := range out.List {
		if fs.Mountpoint == "" {
			t.Errorf("filesystem without mountpoint kept: %+v", fs)
		}
		if !fs.HasUsage && (fs.TotalBytes != 0 || fs.UsedBytes != 0) {
			t.Errorf("usage without HasUsage: %+v", fs)
		}
		requireBounded(t, "filesystem disks", len(fs.Disks), disksIn, len(raw))
		if s := slices.Clone(fs.Disks); len(slices.Compact(sortedStrings(s))) != len(fs.Disks) {
			t.Errorf("duplicate disks: %q", fs.Disks)
		}
	}
	checkMapping(t, DiskMappingFromFilesystems(in), disksIn, len(raw))
}

// sortedStrings sorts s in place and returns it.
func sortedStrings(s []string) []string { slices.Sort(s); return s }

// checkMapping checks a serial → device mapping translated from in entries of a rawLen-byte reply.
func checkMapping(t *testing.T, m *guest.Disks, in, rawLen int) {
	t.Helper()
	if m == nil || m.Mappings == nil {
		t.Fatal("disk mapping must be a non-nil list")
	}
	requireUTF8(t, m)
	requireBounded(t, "disk mappings", len(m.Mappings), in, rawLen)
	for i, d := range m.Mappings {
		if d.Serial == "" || d.Device == "" {
			t.Errorf("mapping with empty serial or device: %+v", d)
		}
		if i > 0 && m.Mappings[i-1].Serial >= d.Serial {
			t.Errorf("mappings not sorted by unique serial: %q then %q", m.Mappings[i-1].Serial, d.Serial)
		}
	}
}

// FuzzTranslateDisks: guest-get-disks.
func FuzzTranslateDisks(f *testing.F) {
	f.Add([]byte(`[{"name":"/dev/vda","partition":false,"address":{"serial":"s1","bus-type":"virtio"}}]`))
	f.Fuzz(checkTranslateDisks)
}

// checkTranslateDisks is FuzzTranslateDisks's property check (TestHostileLargeReplies runs it too).
func checkTranslateDisks(t *testing.T, raw []byte) {
	in, ok := decodeOrSkip[[]DiskInfo](t, CmdDisks, raw)
	if !ok {
		return
	}
	checkMapping(t, TranslateDisks(in), len(in), len(raw))
}

// FuzzTranslateInterfaces: guest-network-get-interfaces (and the early-network check).
func FuzzTranslateInterfaces(f *testing.F) {
	f.Add([]byte(`[{"name":"eth0","hardware-address":"52:54:00:AA:BB:CC","ip-addresses":[{"ip-address-type":"ipv4","ip-address":"10.0.0.2","prefix":24}]}]`))
	f.Fuzz(checkTranslateInterfaces)
}

// checkTranslateInterfaces is FuzzTranslateInterfaces's property check (TestHostileLargeReplies runs it too).
func checkTranslateInterfaces(t *testing.T, raw []byte) {
	in, ok := decodeOrSkip[[]NetInterface](t, CmdInterfaces, raw)
	if !ok {
		return
	}
	out := TranslateInterfaces(in)
	if out == nil || out.Interfaces == nil {
		t.Fatal("a decoded interfaces reply must translate to a non-nil list")
	}
	requireUTF8(t, out)
	requireBounded(t, "interfaces", len(out.Interfaces), len(in), len(raw))
	addrIn := 0
	for _, itf := range in {
		addrIn += len(itf.IPAddresses)
	}
	addrOut := 0
	for _, itf := range out.Interfaces {
		if itf.Name == "" {
			t.Errorf("interface without name kept: %+v", itf)
		}
		if itf.MAC != strings.ToLower(itf.MAC) {
			t.Errorf("MAC %q not lower-case", itf.MAC)
		}
		addrOut += len(itf.IPv4) + len(itf.IPv6)
	}
	requireBounded(t, "addresses", addrOut, addrIn, len(raw))
	_ = HasRoutableAddress(out)
}

// FuzzTranslateVCPUs: guest-get-vcpus.
func FuzzTranslateVCPUs(f *testing.F) {
	f.Add([]byte(`[{"logical-id":0,"online":true,"can-offline":false}]`))
	f.Fuzz(checkTranslateVCPUs)
}

// checkTranslateVCPUs is FuzzTranslateVCPUs's property check (TestHostileLargeReplies runs it too).
func checkTranslateVCPUs(t *testing.T, raw []byte) {
	in, ok := decodeOrSkip[[]VCPU](t, CmdVCPUs, raw)
	if !ok {
		return
	}
	out := TranslateVCPUs(in)
	if out == nil {
		if len(in) != 0 {
			t.Errorf("%d vCPUs translated to nil", len(in))
		}
		return
	}
	if out.Online < 0 || out.Online > len(in) {
		t.Errorf("%d online vCPUs from %d entries", out.Online, len(in))
	}
}

// FuzzPlanVCPUs: SetVCPUs planning from a guest-get-vcpus reply the guest controls, for any
// count. checkPlanVCPUs is the property check.
func FuzzPlanVCPUs(f *testing.F) {
	f.Add([]byte(`[{"logical-id":0,"online":true,"can-offline":false},{"logical-id":1,"online":true,"can-offline":true},{"logical-id":2,"online":false,"can-offline":true}]`), 2)
	f.Add([]byte(`[{"logical-id":3,"online":true,"can-offline":true},{"logical-id":3,"online":false}]`), 1)
	f.Add([]byte(`[{"logical-id":-1,"online":true},{"logical-id":65536,"online":true}]`), 1)
	f.Add([]byte(`[{"logical-id":0,"online":false},{"logical-id":7,"online":true,"can-offline":true}]`), 2)
	f.Fuzz(checkPlanVCPUs)
}

// vcpuPlanCounts are the counts TestHostileLargeReplies plans every reply for.
var vcpuPlanCounts = []int{-1, 0, 1, 2, 4096, 100001}

// checkPlanVCPUs: a plan is only made from a believable reply (ids unique and in range, not too
// many entries, some vCPU online) and for a reachable count; applying it leaves exactly count
// vCPUs online; it only onlines offline vCPUs and only offlines online, offlinable vCPUs other
// than vCPU 0; its lists are ascending and its cpulist form lists exactly those ids.
func checkPlanVCPUs(t *testing.T, raw []byte, count int) {
	in, ok := decodeOrSkip[[]VCPU](t, CmdVCPUs, raw)
	if !ok {
		return
	}
	plan, err := PlanVCPUs(in, count)
	if err != nil {
		if err.Error() == "" {
			t.Error("empty error message")
		}
		return
	}
	if count < 1 || count > len(in) || len(in) > MaxGuestVCPUs {
		t.Fatalf("planned count %d for %d vCPUs", count, len(in))
	}
	if len(plan.Online) > 0 && len(plan.Offline) > 0 {
		t.Fatalf("plan both onlines and offlines: %+v", plan)
	}
	state := map[int]VCPU{}
	for _, v := range in {
		if _, dup := state[v.LogicalID]; dup {
			t.Fatalf("planned from a reply with vCPU %d twice", v.LogicalID)
		}
		if v.LogicalID < 0 || v.LogicalID > MaxGuestVCPUID {
			t.Fatalf("planned from a reply with vCPU id %d", v.LogicalID)
		}
		state[v.LogicalID] = v
	}
	for _, id := range plan.Online {
		v := state[id]
		if v.Online || v.LogicalID != id {
			t.Fatalf("plan onlines vCPU %d, which is online or unknown", id)
		}
		v.Online = true
		state[id] = v
	}
	for _, id := range plan.Offline {
		v, known := state[id]
		if !known || !v.Online || !v.CanOffline || id == 0 {
			t.Fatalf("plan offlines vCPU %d (%+v, known %v)", id, v, known)
		}
		v.Online = false
		state[id] = v
	}
	online := 0
	for _, v := range state {
		if v.Online {
			online++
		}
	}
	if online != count {
		t.Fatalf("after the plan %d vCPUs are online, want %d (%+v)", online, count, plan)
	}
	for _, ids := range [][]int{plan.Online, plan.Offline} {
		if !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != len(ids) {
			t.Fatalf("plan ids not ascending/unique: %v", ids)
		}
		if got := expandCPUList(t, FormatCPUList(ids)); !slices.Equal(got, ids) {
			t.Fatalf("FormatCPUList(%v) = %q, which lists %v", ids, FormatCPUList(ids), got)
		}
	}
	if !utf8.ValidString(plan.String()) {
		t.Fatal("plan description not UTF-8")
	}
}

// expandCPUList expands a cpulist FormatCPUList wrote ("0-3,6").
func expandCPUList(t *testing.T, s string) []int {
	t.Helper()
	var out []int
	if s == "" {
		return out
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || b <= a && isRange {
			t.Fatalf("cpulist %q: bad part %q", s, part)
		}
		for i := a; i <= b; i++ {
			out = append(out, i)
		}
	}
	return out
}

// FuzzTranslateDevices: guest-get-devices in both formats.
func FuzzTranslateDevices(f *testing.F) {
	f.Add([]byte(`[{"driver-name":"netkvm","driver-date":1600000000000000000,"driver-version":"100.1","id":{"type":"pci","vendor-id":6900,"device-id":4096}}]`))
	f.Fuzz(checkTranslateDevices)
}

// checkTranslateDevices is FuzzTranslateDevices's property check (TestHostileLargeReplies runs it too).
func checkTranslateDevices(t *testing.T, raw []byte) {
	out, err := TranslateDevices(raw)
	if err != nil {
		return
	}
	var in []json.RawMessage
	if err := json.Unmarshal(raw, &in); err != nil {
		t.Fatalf("TranslateDevices accepted what is not a JSON array: %v", err)
	}
	if out == nil || out.List == nil {
		t.Fatal("a decoded devices reply must translate to a non-nil list")
	}
	requireUTF8(t, out)
	requireBounded(t, "devices", len(out.List), len(in), len(raw))
	seen := map[guest.PCIDevice]bool{}
	for _, d := range out.List {
		if seen[d] {
			t.Errorf("duplicate device %+v", d)
		}
		seen[d] = true
	}
}

// FuzzLibvirtGuestInfo: the typed path. libvirt's GetGuestInfo structs, built from fuzzed
// primitives, through fromLibvirtGuestInfo and the translations, for every info type. Strings
// from libvirt are C strings and may be any bytes: the translations pass them through (the
// publisher makes every string valid UTF-8), so only the structural properties are checked.
func FuzzLibvirtGuestInfo(f *testing.F) {
	f.Add("root", "debian", "x86_64", uint64(1700000000250), int64(3600), uint64(10<<30), uint64(1<<30), uint16(0xffff), uint8(3))
	f.Fuzz(func(t *testing.T, s1, s2, s3 string, u1 uint64, i1 int64, u2, u3 uint64, set uint16, count uint8) {
		bit := func(i int) bool { return set&(1<<i) != 0 }
		n := int(count % 8)
		gi := &libvirt.DomainGuestInfo{
			OS: &libvirt.DomainGuestInfoOS{IDSet: bit(0), ID: s1, NameSet: bit(1), Name: s2, MachineSet: bit(2), Machine: s3,
				KernelReleaseSet: bit(3), KernelRelease: s3, PrettyNameSet: bit(4), PrettyName: s1, VariantID: s2},
			TimeZone:    &libvirt.DomainGuestInfoTimeZone{NameSet: bit(5), Name: s3, OffsetSet: bit(6), Offset: int(i1)},
			HostnameSet: bit(7), Hostname: s1,
		}
		if bit(15) {
			gi.OS, gi.TimeZone = nil, nil
		}
		for k := range n {
			gi.Users = append(gi.Users, libvirt.DomainGuestInfoUser{NameSet: true, Name: s1[:min(k, len(s1))], Domain: s2, LoginTime: u1 + uint64(k)})
			fs := libvirt.DomainGuestInfoFileSystem{MountPoint: s2, FSType: s3, TotalBytesSet: bit(8), TotalBytes: u2, UsedBytesSet: bit(9), UsedBytes: u3}
			for j := range n {
				fs.Disks = append(fs.Disks, libvirt.DomainGuestInfoFileSystemDisk{Serial: s1, Device: s3[:min(j, len(s3))]})
			}
			gi.FileSystems = append(gi.FileSystems, fs)
			gi.Disks = append(gi.Disks, libvirt.DomainGuestInfoDisk{Name: s2, Partition: bit(10 + k%2), SerialSet: bit(12), Serial: s1[:min(k, len(s1))]})
		}
		for _, it := range []InfoType{InfoUsers, InfoOS, InfoTimezone, InfoHostname, InfoFilesystem, InfoDisks} {
			r := fromLibvirtGuestInfo(it, gi)
			if r == nil {
				t.Fatalf("type %d: nil reply", it)
			}
			switch it {
			case InfoUsers:
				u := TranslateUsers(r.Users)
				requireBounded(t, "users", len(u.List), n, -1)
				for k, x := range u.List {
					// names are prefixes of s1, so the skipped (empty) ones come first
					ms := gi.Users[len(gi.Users)-len(u.List)+k].LoginTime
					if ms > 0 && ms < 1<<53 && (x.LoginTime.UnixMilli() < int64(ms)-1 || x.LoginTime.UnixMilli() > int64(ms)+1) {
						t.Errorf("login %d ms → %v", ms, x.LoginTime)
					}
				}
			case InfoOS:
				if out := TranslateOS(r.OS); out != nil && !slices.Contains(knownArch, out.Arch) {
					t.Errorf("arch %q", out.Arch)
				}
			case InfoTimezone:
				if tz := TranslateTimezone(r.Timezone); tz != nil && int64(tz.OffsetMinutes) != int64(math.Floor(float64(i1)/60)) {
					t.Errorf("offset %d s → %d min", i1, tz.OffsetMinutes)
				}
			case InfoHostname:
				if h := TranslateHostname(r.Hostname); h != nil && h.Name != s1 {
					t.Errorf("host name %q → %q", s1, h.Name)
				}
			case InfoFilesystem:
				fs := TranslateFilesystems(r.FS)
				requireBounded(t, "filesystems", len(fs.List), n, -1)
				for _, x := range fs.List {
					requireBounded(t, "filesystem disks", len(x.Disks), n, -1)
				}
				requireBounded(t, "disk mappings", len(DiskMappingFromFilesystems(r.FS).Mappings), n*n, -1)
			case InfoDisks:
				requireBounded(t, "disk mappings", len(TranslateDisks(r.Disks).Mappings), n, -1)
			}
		}
	})
}

// replyChecks are the property checks of the []byte fuzz targets, by target name.
var replyChecks = map[string]func(*testing.T, []byte){
	"FuzzParseAgentInfo": checkParseAgentInfo, "FuzzTranslateOS": checkTranslateOS,
	"FuzzTranslateHostname": checkTranslateHostname, "FuzzTranslateTimezone": checkTranslateTimezone,
	"FuzzTranslateUsers": checkTranslateUsers, "FuzzTranslateFilesystems": checkTranslateFilesystems,
	"FuzzTranslateDisks": checkTranslateDisks, "FuzzTranslateInterfaces": checkTranslateInterfaces,
	"FuzzTranslateVCPUs": checkTranslateVCPUs, "FuzzTranslateDevices": checkTranslateDevices,
	"FuzzPlanVCPUs": func(t *testing.T, raw []byte) {
		for _, n := range vcpuPlanCounts {
			checkPlanVCPUs(t, raw, n)
		}
	},
}

// repeat returns a JSON list of n copies of elem, wrapped in prefix/suffix.
func repeat(prefix, elem, suffix string, n int) []byte {
	var b strings.Builder
	b.WriteString(prefix + "[")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(elem)
	}
	b.WriteString("]" + suffix)
	return []byte(b.String())
}

// TestHostileLargeReplies runs the fuzz targets' property checks on replies too large to be
// useful as seeds (the fuzzer spends its time mutating and minimising megabyte inputs):
// 100,000-entry lists and nesting at encoding/json's depth limit, for every target.
func TestHostileLargeReplies(t *testing.T) {
	const n = 100000
	generic := map[string][]byte{
		"list-100k-empty-objects": repeat("", "{}", "", n),
		"list-100k-nulls":         repeat("", "null", "", n),
		"list-100k-wrong-types":   repeat("", `{"name":1,"user":[],"mountpoint":{},"online":"yes"}`, "", n),
		"deep-list-10000":         []byte(strings.Repeat("[", 10000) + strings.Repeat("]", 10000)),
		"deep-list-10001":         []byte(strings.Repeat("[", 10001) + strings.Repeat("]", 10001)),
		"deep-object-10000":       []byte(strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000)),
	}
	specific := map[string][]byte{
		"FuzzTranslateUsers":       repeat("", `{"user":"u","login-time":1.7e9}`, "", n),
		"FuzzParseAgentInfo":       repeat(`{"version":"x","supported_commands":`, `{"name":"guest-ping","enabled":true}`, "}", n),
		"FuzzTranslateFilesystems": repeat("", `{"mountpoint":"/","disk":[{"serial":"s","dev":"/dev/vda1"}]}`, "", n),
		"FuzzTranslateDisks":       repeat("", `{"name":"/dev/vda","address":{"serial":"s"}}`, "", n),
		"FuzzTranslateInterfaces":  repeat(`[{"name":"eth0","ip-addresses":`, `{"ip-address":"10.0.0.1","prefix":24}`, "}]", n),
		"FuzzTranslateVCPUs":       repeat("", `{"logical-id":1,"online":true}`, "", n),
		"FuzzPlanVCPUs":            repeat("", `{"logical-id":1,"online":true,"can-offline":true}`, "", n),
		"FuzzTranslateDevices":     repeat("", `{"id":{"type":"pci","vendor-id":1,"device-id":2}}`, "", n),
	}
	for target, check := range replyChecks {
		for name, raw := range generic {
			t.Run(target+"/"+name, func(t *testing.T) { check(t, raw) })
		}
		if raw, ok := specific[target]; ok {
			t.Run(target+"/100k-realistic-entries", func(t *testing.T) { check(t, raw) })
		}
	}
}

// BenchmarkHostileReplies measures translations of large hostile replies: n distinct PCI devices
// (guest-get-devices) and one filesystem with n distinct disks (guest-get-fsinfo). Both
// de-duplicate with slices.Contains, so the cost grows with n² (see docs/benchmarks.md).
func BenchmarkHostileReplies(b *testing.B) {
	for _, n := range []int{1000, 10000, 30000} {
		var dev, fs strings.Builder
		dev.WriteString("[")
		fs.WriteString(`[{"mountpoint":"/","disk":[`)
		for i := range n {
			if i > 0 {
				dev.WriteString(",")
				fs.WriteString(",")
			}
			fmt.Fprintf(&dev, `{"driver-name":"d","id":{"type":"pci","vendor-id":%d,"device-id":%d}}`, i>>16, i&0xffff)
			fmt.Fprintf(&fs, `{"serial":"s%d","dev":"/dev/vd%d"}`, i, i)
		}
		dev.WriteString("]")
		fs.WriteString("]}]")
		b.Run(fmt.Sprintf("devices-%d", n), func(b *testing.B) {
			raw := []byte(dev.String())
			b.SetBytes(int64(len(raw)))
			for b.Loop() {
				if out, err := TranslateDevices(raw); err != nil || len(out.List) != n {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("fsinfo-disks-%d", n), func(b *testing.B) {
			var in []FSInfo
			if err := json.Unmarshal([]byte(fs.String()), &in); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if out := TranslateFilesystems(in); len(out.List[0].Disks) != n {
					b.Fatal("wrong disk count")
				}
			}
		})
	}
}
