package qga

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"regexp"
	"slices"
	"strings"
	"time"

	"guestagent.io/operator/agentd/guest"
)

// Translations from QGA replies to guest.Info groups. Every function accepts nil/partial input
// and returns nil when the reply carries nothing usable, so that a malformed reply never blanks
// good data: callers keep the previous group when they get nil.

// MapArch normalises the machine string of guest-get-osinfo: i386/i586/i686 become "x86";
// x86_64, ppc, ppcle, ppc64, ppc64le, aarch64 and s390x are kept (VDSM maps aarch64 and s390x
// to "unknown"; we deliberately keep them because the API publishes them); anything else is
// "unknown".
func MapArch(machine string) string {
	switch m := strings.ToLower(strings.TrimSpace(machine)); m {
	case "i386", "i486", "i586", "i686", "x86":
		return "x86"
	case "x86_64", "ppc", "ppcle", "ppc64", "ppc64le", "aarch64", "s390x":
		return m
	}
	return "unknown"
}

// TranslateOS converts guest-get-osinfo. Windows is recognised by id "mswindows".
func TranslateOS(o *OSInfo) *guest.OS {
	if o == nil || (*o == OSInfo{}) {
		return nil
	}
	out := &guest.OS{
		Type:          guest.OSTypeLinux,
		Name:          o.Name,
		ID:            o.ID,
		Version:       o.Version,
		VersionID:     o.VersionID,
		PrettyName:    o.PrettyName,
		Variant:       o.Variant,
		KernelRelease: o.KernelRelease,
		KernelVersion: o.KernelVersion,
		Arch:          MapArch(o.Machine),
	}
	if o.ID == "mswindows" {
		out.Type = guest.OSTypeWindows
	} else if o.KernelRelease == "" && o.ID == "" && o.Name == "" {
		out.Type = guest.OSTypeUnknown
	}
	if out.Variant == "" {
		out.Variant = o.VariantID
	}
	return out
}

// TranslateTimezone converts guest-get-timezone; the offset is floored to whole minutes.
func TranslateTimezone(tz *TimezoneInfo) *guest.Timezone {
	if tz == nil || tz.Offset == nil {
		return nil
	}
	return &guest.Timezone{Zone: tz.Zone, OffsetMinutes: int(math.Floor(float64(*tz.Offset) / 60))}
}

// TranslateHostname converts guest-get-host-name. QGA reports one name; like VDSM it is used as
// both Name and FQDN.
func TranslateHostname(h *HostName) *guest.Hostname {
	if h == nil || h.HostName == "" {
		return nil
	}
	return &guest.Hostname{Name: h.HostName, FQDN: h.HostName}
}

// TranslateUsers converts guest-get-users. A successful empty reply is an empty, non-nil list
// (nobody logged in; it clears old users). Entries without a user name are skipped.
func TranslateUsers(us []UserInfo) *guest.Users {
	out := &guest.Users{List: []guest.User{}}
	for _, u := range us {
		if u.User == "" {
			continue
		}
		gu := guest.User{Name: u.User, Domain: u.Domain}
		if u.LoginTime > 0 {
			sec, frac := math.Modf(u.LoginTime)
			gu.LoginTime = time.Unix(int64(sec), int64(frac*1e9)).UTC()
		}
		out.List = append(out.List, gu)
	}
	return out
}

var partitionRE = regexp.MustCompile(`^(/dev/[hsv]d[a-z]+)[0-9]+$`)

// StripPartition maps a partition device to its disk (/dev/vda1 → /dev/vda) for the
// hd/sd/vd naming schemes only; nvme/xvd and others are returned unchanged.
func StripPartition(dev string) string {
	if m := partitionRE.FindStringSubmatch(dev); m != nil {
		return m[1]
	}
	return dev
}

// Caps on what one reply can contribute: a hostile guest's multi-megabyte reply costs linear
// time and bounded memory (the API caps are lower still; the publisher truncates and counts).
const (
	maxDisksPerFilesystem = 64
	maxDevices            = 4096
)

// TranslateFilesystems converts guest-get-fsinfo. Entries without total or used bytes stay
// listed with HasUsage=false. Entries without a mountpoint are skipped.
func TranslateFilesystems(fs []FSInfo) *guest.Filesystems {
	out := &guest.Filesystems{List: []guest.Filesystem{}}
	for _, f := range fs {
		if f.Mountpoint == "" {
			continue
		}
		gf := guest.Filesystem{Mountpoint: f.Mountpoint, Type: f.Type}
		if f.TotalBytes != nil && f.UsedBytes != nil {
			gf.TotalBytes, gf.UsedBytes, gf.HasUsage = *f.TotalBytes, *f.UsedBytes, true
		}
		seen := map[string]bool{}
		for _, d := range f.Disk {
			if len(gf.Disks) >= maxDisksPerFilesystem {
				break
			}
			if d.Dev != "" && !seen[d.Dev] {
				seen[d.Dev] = true
				gf.Disks = append(gf.Disks, d.Dev)
			}
		}
		out.List = append(out.List, gf)
	}
	return out
}

// DiskMappingFromFilesystems builds the serial → device mapping from guest-get-fsinfo (used
// only when guest-get-disks is unavailable), with the partition number stripped.
func DiskMappingFromFilesystems(fs []FSInfo) *guest.Disks {
	m := map[string]string{}
	for _, f := range fs {
		for _, d := range f.Disk {
			if d.Serial != "" && d.Dev != "" {
				m[d.Serial] = StripPartition(d.Dev)
			}
		}
	}
	return mappingFrom(m)
}

// TranslateDisks converts guest-get-disks to the serial → device mapping. Partitions and entries
// without a serial are skipped.
func TranslateDisks(ds []DiskInfo) *guest.Disks {
	m := map[string]string{}
	for _, d := range ds {
		if d.Partition || d.Address == nil || d.Address.Serial == "" || d.Name == "" {
			continue
		}
		m[d.Address.Serial] = d.Name
	}
	return mappingFrom(m)
}

func mappingFrom(m map[string]string) *guest.Disks {
	out := &guest.Disks{Mappings: []guest.DiskMapping{}}
	for s, d := range m {
		out.Mappings = append(out.Mappings, guest.DiskMapping{Serial: s, Device: d})
	}
	slices.SortFunc(out.Mappings, func(a, b guest.DiskMapping) int { return strings.Compare(a.Serial, b.Serial) })
	return out
}

// TranslateInterfaces converts guest-network-get-interfaces (or libvirt's agent-sourced
// interface addresses). lo is included; addresses keep their prefix in CIDR form.
func TranslateInterfaces(ifs []NetInterface) *guest.Network {
	out := &guest.Network{Interfaces: []guest.Interface{}}
	for _, itf := range ifs {
		if itf.Name == "" {
			continue
		}
		gi := guest.Interface{Name: itf.Name, MAC: strings.ToLower(itf.HardwareAddress)}
		for _, a := range itf.IPAddresses {
			if a.Address == "" {
				continue
			}
			s := a.Address
			if a.Prefix != nil {
				s = fmt.Sprintf("%s/%d", a.Address, *a.Prefix)
			}
			switch strings.ToLower(a.Type) {
			case "ipv4":
				gi.IPv4 = append(gi.IPv4, s)
			case "ipv6":
				gi.IPv6 = append(gi.IPv6, s)
			default:
				if ip := net.ParseIP(a.Address); ip != nil && ip.To4() != nil {
					gi.IPv4 = append(gi.IPv4, s)
				} else if ip != nil {
					gi.IPv6 = append(gi.IPv6, s)
				}
			}
		}
		out.Interfaces = append(out.Interfaces, gi)
	}
	return out
}

// HasRoutableAddress reports whether any interface other than lo/docker0 has an address that is
// neither loopback nor link-local (the boot window's early-network check).
func HasRoutableAddress(n *guest.Network) bool {
	if n == nil {
		return false
	}
	for _, itf := range n.Interfaces {
		if itf.Name == "lo" || itf.Name == "docker0" {
			continue
		}
		for _, a := range slices.Concat(itf.IPv4, itf.IPv6) {
			ip := net.ParseIP(strings.SplitN(a, "/", 2)[0])
			if ip != nil && !ip.IsLoopback() && !ip.IsLinkLocalUnicast() && !ip.IsUnspecified() {
				return true
			}
		}
	}
	return false
}

// TranslateVCPUs converts guest-get-vcpus: the number of online vCPUs. An empty reply is
// malformed (a guest always has a CPU) and gives nil.
func TranslateVCPUs(vs []VCPU) *guest.VCPUs {
	if len(vs) == 0 {
		return nil
	}
	n := 0
	for _, v := range vs {
		if v.Online {
			n++
		}
	}
	return &guest.VCPUs{Online: n}
}

// TranslateDevices converts the raw guest-get-devices reply, accepting both the pre-5.2 format
// (address.data.{vendor-id,device-id}, driver-date "YYYY-MM-DD") and the QEMU ≥ 5.2 format
// (id.{vendor-id,device-id}, driver-date as integer nanoseconds since the epoch). Only PCI
// devices are kept; exact duplicates are dropped.
func TranslateDevices(raw json.RawMessage) (*guest.PCIDevices, error) {
	var entries []deviceEntry
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, fmt.Errorf("guest-get-devices reply: %w", err)
	}
	out := &guest.PCIDevices{List: []guest.PCIDevice{}}
	seen := map[guest.PCIDevice]bool{}
	for _, e := range entries {
		if len(out.List) >= maxDevices {
			break
		}
		var vendor, device *uint32
		switch {
		case e.ID != nil && e.ID.Type == "pci":
			vendor, device = e.ID.VendorID, e.ID.DeviceID
		case e.Address != nil && e.Address.Type == "pci" && e.Address.Data != nil:
			vendor, device = e.Address.Data.VendorID, e.Address.Data.DeviceID
		default:
			continue
		}
		if vendor == nil || device == nil || *vendor > math.MaxUint16 || *device > math.MaxUint16 {
			continue
		}
		d := guest.PCIDevice{VendorID: uint16(*vendor), DeviceID: uint16(*device),
			DriverName: e.DriverName, DriverVersion: e.DriverVersion, DriverDate: driverDate(e.DriverDate)}
		if !seen[d] {
			seen[d] = true
			out.List = append(out.List, d)
		}
	}
	return out, nil
}

func driverDate(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var ns json.Number
	if json.Unmarshal(raw, &ns) == nil {
		if n, err := ns.Int64(); err == nil {
			return time.Unix(0, n).UTC().Format("2006-01-02")
		}
		if f, err := ns.Float64(); err == nil {
			return time.Unix(0, int64(f)).UTC().Format("2006-01-02")
		}
	}
	return ""
}

// ParseAgentInfo decodes a guest-info reply.
func ParseAgentInfo(raw json.RawMessage) (*AgentInfo, error) {
	var ai AgentInfo
	if err := json.Unmarshal(raw, &ai); err != nil {
		return nil, fmt.Errorf("guest-info reply: %w", err)
	}
	if ai.Version == "" && len(ai.SupportedCommands) == 0 {
		return nil, fmt.Errorf("guest-info reply carries neither version nor commands")
	}
	return &ai, nil
}
