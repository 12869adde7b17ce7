package qga

import (
	"encoding/json"
	"slices"
	"testing"

	"guestagent.io/operator/agentd/guest"
)

func TestTranslateOS(t *testing.T) {
	lin := TranslateOS(&OSInfo{ID: "debian", Name: "Debian GNU/Linux", KernelRelease: "6.1.0-56-amd64", Machine: "i686", Version: "12 (bookworm)", VersionID: "12"})
	if lin.Type != guest.OSTypeLinux || lin.Arch != "x86" || lin.KernelRelease != "6.1.0-56-amd64" || lin.Version != "12 (bookworm)" {
		t.Errorf("linux = %+v", lin)
	}
	win := TranslateOS(&OSInfo{ID: "mswindows", Name: "Microsoft Windows", PrettyName: "Windows Server 2022 Standard",
		KernelVersion: "10.0", KernelRelease: "20348", Machine: "x86_64", VariantID: "server"})
	if win.Type != guest.OSTypeWindows || win.Arch != "x86_64" || win.PrettyName == "" || win.Variant != "server" {
		t.Errorf("windows = %+v", win)
	}
	if TranslateOS(nil) != nil || TranslateOS(&OSInfo{}) != nil {
		t.Error("empty OS reply must translate to nil")
	}
	for in, want := range map[string]string{"i386": "x86", "i586": "x86", "x86_64": "x86_64", "ppc64le": "ppc64le", "ppc": "ppc",
		"ppcle": "ppcle", "ppc64": "ppc64", "aarch64": "aarch64", "s390x": "s390x", "riscv64": "unknown", "": "unknown"} {
		if got := MapArch(in); got != want {
			t.Errorf("MapArch(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTranslateSmallGroups(t *testing.T) {
	for off, want := range map[int]int{0: 0, 3600: 60, -1800: -30, -1801: -31, 19800: 330, 59: 0, -1: -1} {
		if tz := TranslateTimezone(&TimezoneInfo{Zone: "X", Offset: &off}); tz.OffsetMinutes != want {
			t.Errorf("offset %d s → %d min, want %d", off, tz.OffsetMinutes, want)
		}
	}
	if TranslateTimezone(&TimezoneInfo{Zone: "UTC"}) != nil || TranslateTimezone(nil) != nil {
		t.Error("timezone without offset must be nil")
	}
	if h := TranslateHostname(&HostName{HostName: "vm.example.com"}); h.Name != "vm.example.com" || h.FQDN != "vm.example.com" {
		t.Errorf("hostname = %+v", h)
	}
	if TranslateHostname(&HostName{}) != nil || TranslateHostname(nil) != nil {
		t.Error("empty hostname must be nil")
	}
	if u := TranslateUsers(nil); u == nil || u.List == nil || len(u.List) != 0 {
		t.Errorf("zero users = %+v", u)
	}
	u := TranslateUsers([]UserInfo{{User: "root", LoginTime: 1700000000.25}, {User: ""}, {User: "frodo", Domain: "hobbits"}})
	if len(u.List) != 2 || u.List[0].LoginTime.UnixMilli() != 1700000000250 || u.List[1].Domain != "hobbits" || !u.List[1].LoginTime.IsZero() {
		t.Errorf("users = %+v", u.List)
	}
	if v := TranslateVCPUs([]VCPU{{0, true, false}, {1, false, true}, {2, true, true}}); v.Online != 2 {
		t.Errorf("vcpus = %+v", v)
	}
	if TranslateVCPUs(nil) != nil {
		t.Error("empty vcpu reply must be nil")
	}
}

func TestTranslateStorage(t *testing.T) {
	fs := []FSInfo{
		{Mountpoint: "/", Type: "ext4", TotalBytes: u64(1000), UsedBytes: u64(400), Disk: []FSDisk{{Serial: "s-root", Dev: "/dev/vda1"}, {Serial: "s-root", Dev: "/dev/vda1"}}},
		{Mountpoint: "System Reserved", Type: "NTFS"}, // no usage: kept, HasUsage=false
		{Mountpoint: "/data", Type: "xfs", TotalBytes: u64(10), UsedBytes: u64(1), Disk: []FSDisk{{Serial: "s-nvme", Dev: "/dev/nvme0n1p1"}, {Serial: "s-sd", Dev: "/dev/sdb12"}}},
		{Mountpoint: ""}, // skipped
	}
	f := TranslateFilesystems(fs)
	if len(f.List) != 3 || !f.List[0].HasUsage || f.List[0].UsedBytes != 400 || f.List[1].HasUsage || !slices.Equal(f.List[0].Disks, []string{"/dev/vda1"}) {
		t.Errorf("filesystems = %+v", f.List)
	}
	m := DiskMappingFromFilesystems(fs)
	want := []guest.DiskMapping{{Serial: "s-nvme", Device: "/dev/nvme0n1p1"}, {Serial: "s-root", Device: "/dev/vda"}, {Serial: "s-sd", Device: "/dev/sdb"}}
	if !slices.Equal(m.Mappings, want) {
		t.Errorf("fs mapping = %+v", m.Mappings)
	}
	d := TranslateDisks([]DiskInfo{{Name: "/dev/vda", Address: &DiskAddress{Serial: "s-root"}}, {Name: "/dev/vda1", Partition: true, Address: &DiskAddress{Serial: "s-root"}},
		{Name: "/dev/sr0"}, {Name: "/dev/sdb", Address: &DiskAddress{}}})
	if !slices.Equal(d.Mappings, []guest.DiskMapping{{Serial: "s-root", Device: "/dev/vda"}}) {
		t.Errorf("disks = %+v", d.Mappings)
	}
	for in, want := range map[string]string{"/dev/vda1": "/dev/vda", "/dev/sdab3": "/dev/sdab", "/dev/hda": "/dev/hda", "/dev/xvda1": "/dev/xvda1", "/dev/nvme0n1p2": "/dev/nvme0n1p2"} {
		if got := StripPartition(in); got != want {
			t.Errorf("StripPartition(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTranslateInterfaces(t *testing.T) {
	n := TranslateInterfaces([]NetInterface{
		{Name: "lo", HardwareAddress: "00:00:00:00:00:00", IPAddresses: []IPAddress{{Type: "ipv4", Address: "127.0.0.1", Prefix: i(8)}, {Type: "ipv6", Address: "::1", Prefix: i(128)}}},
		{Name: "eth0", HardwareAddress: "52:54:00:AB:CD:EF", IPAddresses: []IPAddress{{Type: "ipv4", Address: "10.0.2.15", Prefix: i(24)}, {Type: "ipv6", Address: "fe80::5054:ff:feab:cdef", Prefix: i(64)}, {Address: "192.0.2.1"}}},
		{Name: ""},
	})
	if len(n.Interfaces) != 2 || n.Interfaces[0].Name != "lo" || n.Interfaces[1].MAC != "52:54:00:ab:cd:ef" ||
		!slices.Equal(n.Interfaces[1].IPv4, []string{"10.0.2.15/24", "192.0.2.1"}) || !slices.Equal(n.Interfaces[0].IPv6, []string{"::1/128"}) {
		t.Errorf("interfaces = %+v", n.Interfaces)
	}
	if !HasRoutableAddress(n) {
		t.Error("10.0.2.15 is routable")
	}
	if HasRoutableAddress(TranslateInterfaces([]NetInterface{{Name: "lo", IPAddresses: []IPAddress{{Type: "ipv4", Address: "10.1.1.1"}}},
		{Name: "eth0", IPAddresses: []IPAddress{{Type: "ipv6", Address: "fe80::1", Prefix: i(64)}, {Type: "ipv4", Address: "169.254.1.1"}}}})) {
		t.Error("lo/link-local addresses are not routable")
	}
}

func TestTranslateDevices(t *testing.T) {
	raw := json.RawMessage(`[
	 {"driver-name":"viostor","driver-version":"100.85","driver-date":"2021-08-30","address":{"type":"pci","data":{"vendor-id":6900,"device-id":4097}}},
	 {"driver-name":"netkvm","driver-version":"100.92","driver-date":1630281600000000000,"id":{"type":"pci","vendor-id":6900,"device-id":4096}},
	 {"driver-name":"netkvm","driver-version":"100.92","driver-date":1630281600000000000,"id":{"type":"pci","vendor-id":6900,"device-id":4096}},
	 {"driver-name":"usb","id":{"type":"usb","vendor-id":1,"device-id":2}},
	 {"driver-name":"broken","id":{"type":"pci"}},
	 {"driver-name":"nodate","id":{"type":"pci","vendor-id":1,"device-id":2}}
	]`)
	d, err := TranslateDevices(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := []guest.PCIDevice{
		{VendorID: 6900, DeviceID: 4097, DriverName: "viostor", DriverVersion: "100.85", DriverDate: "2021-08-30"},
		{VendorID: 6900, DeviceID: 4096, DriverName: "netkvm", DriverVersion: "100.92", DriverDate: "2021-08-30"},
		{VendorID: 1, DeviceID: 2, DriverName: "nodate"},
	}
	if !slices.Equal(d.List, want) {
		t.Errorf("devices = %+v", d.List)
	}
	if _, err := TranslateDevices(json.RawMessage(`{"not":"a list"}`)); err == nil {
		t.Error("malformed devices: want error")
	}
	if _, err := ParseAgentInfo(json.RawMessage(`{}`)); err == nil {
		t.Error("empty guest-info: want error")
	}
}
