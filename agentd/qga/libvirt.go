package qga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"libvirt.org/go/libvirt"

	"guestagent.io/operator/agentd/virt"
)

// LibvirtAPI implements DomainAPI with libvirt: typed APIs wherever libvirt has them, raw
// QemuAgentCommand only for guest-info, guest-get-devices and guest-ping (and halt, which
// libvirt's shutdown API cannot express). Before every typed agent call it sets the domain's
// agent response timeout (AgentSetResponseTimeout): libvirt 9.0's default blocks for as long as
// a hung agent hangs. The timeout is a setting of the domain in the node's libvirtd, shared with
// every other client (virsh, backup tools, a VSS freeze through another tool), so it is set back
// to libvirt's default, BLOCK, after each call, as VDSM does; agentd's own calls to one domain
// are serialised so that one call's restore never strips another call of its bound.
type LibvirtAPI struct {
	lookup func(uuid string) (*libvirt.Domain, error)

	mu    sync.Mutex
	calls map[string]*domainCalls // per domain UUID, while a bounded call runs
}

// domainCalls serialises agentd's bounded calls to one domain.
type domainCalls struct {
	sync.Mutex
	users int // callers holding or waiting for the lock
}

var _ DomainAPI = (*LibvirtAPI)(nil)

// NewLibvirtAPI returns a LibvirtAPI resolving domains with lookup (normally
// (*virt.Manager).LookupDomain); the returned handles are freed after each call.
func NewLibvirtAPI(lookup func(uuid string) (*libvirt.Domain, error)) *LibvirtAPI {
	return &LibvirtAPI{lookup: lookup, calls: map[string]*domainCalls{}}
}

// lockDomain takes the per-domain lock for a bounded call and returns its release.
func (a *LibvirtAPI) lockDomain(uuid string) func() {
	a.mu.Lock()
	c := a.calls[uuid]
	if c == nil {
		c = &domainCalls{}
		a.calls[uuid] = c
	}
	c.users++
	a.mu.Unlock()
	c.Lock()
	return func() {
		c.Unlock()
		a.mu.Lock()
		if c.users--; c.users == 0 {
			delete(a.calls, uuid)
		}
		a.mu.Unlock()
	}
}

func seconds(d time.Duration) int {
	s := int(math.Ceil(d.Seconds()))
	if s < 1 {
		s = 1
	}
	return s
}

// classifyLibvirt turns a libvirt error into *Error.
func classifyLibvirt(cmd string, err error) error {
	if err == nil {
		return nil
	}
	var qe *Error
	if errors.As(err, &qe) {
		return err
	}
	var le libvirt.Error
	if !errors.As(err, &le) {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return &Error{Class: ErrTimeout, Command: cmd, Err: err}
		}
		if errors.Is(err, virt.ErrNotConnected) {
			return &Error{Class: ErrNotConnected, Command: cmd, Err: err}
		}
		return &Error{Class: ErrLibvirtError, Command: cmd, Err: err}
	}
	e := &Error{Class: ErrLibvirtError, Command: cmd, Code: int(le.Code), Err: err}
	msg := strings.ToLower(le.Message)
	if isFrozenText(msg) { // whatever code libvirt wraps it in
		e.Class = ErrFrozen
		return e
	}
	switch le.Code {
	case libvirt.ERR_AGENT_UNRESPONSIVE:
		if strings.Contains(msg, "not connected") {
			e.Class = ErrNotConnected
		} else {
			e.Class = ErrTimeout
		}
	case libvirt.ERR_AGENT_COMMAND_TIMEOUT, libvirt.ERR_OPERATION_TIMEOUT:
		e.Class = ErrTimeout
	case libvirt.ERR_OPERATION_INVALID, libvirt.ERR_NO_DOMAIN:
		e.Class = ErrDomainNotRunning
	case libvirt.ERR_NO_SUPPORT, libvirt.ERR_ARGUMENT_UNSUPPORTED, libvirt.ERR_OPERATION_UNSUPPORTED:
		e.Class = ErrUnsupported
	case libvirt.ERR_AGENT_COMMAND_FAILED, libvirt.ERR_AGENT_UNSYNCED, libvirt.ERR_INTERNAL_ERROR:
		switch {
		case isUnsupportedText(msg):
			e.Class = ErrUnsupported
		case le.Code != libvirt.ERR_INTERNAL_ERROR || strings.Contains(msg, "agent"):
			e.Class = ErrAgentError
		}
	case libvirt.ERR_INVALID_CONN, libvirt.ERR_RPC, libvirt.ERR_SYSTEM_ERROR:
		if strings.Contains(msg, "agent") && strings.Contains(msg, "not connected") {
			e.Class = ErrNotConnected
		}
	}
	return e
}

// with looks the domain up and runs f. With setTimeout, f runs under the agent response timeout
// and the domain's timeout is set back to BLOCK afterwards, whatever f returned.
func (a *LibvirtAPI) with(ctx context.Context, uuid, cmd string, timeout time.Duration, setTimeout bool, f func(*libvirt.Domain) error) error {
	if err := ctx.Err(); err != nil {
		return &Error{Class: ErrTimeout, Command: cmd, Err: err}
	}
	d, err := a.lookup(uuid)
	if err != nil {
		return classifyLibvirt(cmd, err)
	}
	defer func() { _ = d.Free() }()
	if setTimeout {
		defer a.lockDomain(uuid)()
		// Drivers without agent timeouts (e.g. test:///) reject the call; there is nothing to
		// bound there. Any other failure is the call's failure.
		err := d.AgentSetResponseTimeout(seconds(timeout), 0)
		switch {
		case err == nil:
			defer func() {
				// Best effort: a domain that stopped meanwhile has no timeout left to restore.
				_ = d.AgentSetResponseTimeout(int(libvirt.DOMAIN_AGENT_RESPONSE_TIMEOUT_BLOCK), 0)
			}()
		case ClassOf(classifyLibvirt(cmd, err)) != ErrUnsupported:
			return classifyLibvirt(cmd, fmt.Errorf("set agent response timeout: %w", err))
		}
	}
	return classifyLibvirt(cmd, f(d))
}

// Raw implements DomainAPI with QemuAgentCommand (taints the domain "custom-ga-command").
func (a *LibvirtAPI) Raw(ctx context.Context, uuid, cmd string, timeout time.Duration) (json.RawMessage, error) {
	return a.raw(ctx, uuid, cmd, nil, timeout)
}

func (a *LibvirtAPI) raw(ctx context.Context, uuid, cmd string, args any, timeout time.Duration) (json.RawMessage, error) {
	req := map[string]any{"execute": cmd}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, &Error{Class: ErrAgentError, Command: cmd, Err: err}
	}
	var out json.RawMessage
	err = a.with(ctx, uuid, cmd, timeout, false, func(d *libvirt.Domain) error {
		rep, err := d.QemuAgentCommand(string(b), libvirt.DomainQemuAgentCommandTimeout(seconds(timeout)), 0)
		if err != nil {
			return err
		}
		var r struct {
			Return json.RawMessage  `json:"return"`
			Error  *AgentReplyError `json:"error"`
		}
		if err := json.Unmarshal([]byte(rep), &r); err != nil {
			return &Error{Class: ErrAgentError, Command: cmd, Err: fmt.Errorf("malformed reply: %w", err)}
		}
		if r.Error != nil {
			return classifyAgentReply(cmd, r.Error)
		}
		if r.Return == nil {
			return &Error{Class: ErrAgentError, Command: cmd, Err: errors.New("reply without return member")}
		}
		out = r.Return
		return nil
	})
	return out, err
}

// GuestInfo implements DomainAPI with GetGuestInfo and exactly one type bit.
func (a *LibvirtAPI) GuestInfo(ctx context.Context, uuid string, t InfoType, timeout time.Duration) (*GuestInfoReply, error) {
	cmd := t.Command()
	if cmd == "" {
		return nil, &Error{Class: ErrUnsupported, Command: fmt.Sprintf("guest-info-type-%d", t), Err: errors.New("exactly one known info type required")}
	}
	var out *GuestInfoReply
	err := a.with(ctx, uuid, cmd, timeout, true, func(d *libvirt.Domain) error {
		gi, err := d.GetGuestInfo(libvirt.DomainGuestInfoTypes(t), 0)
		if err != nil {
			return err
		}
		out = fromLibvirtGuestInfo(t, gi)
		return nil
	})
	if err == nil && ((t == InfoOS && out.OS == nil) || (t == InfoTimezone && out.Timezone == nil) || (t == InfoHostname && out.Hostname == nil)) {
		// libvirt 9.0 sometimes swallows an agent failure and returns success without data
		// (observed as the first call to a just-hung agent). Ask the agent whether it is alive
		// so that the caller gets the real failure class.
		if _, perr := a.Raw(ctx, uuid, CmdPing, timeout); perr != nil {
			return nil, perr
		}
		return nil, &Error{Class: ErrAgentError, Command: cmd, Err: errors.New("libvirt returned no data for the requested type")}
	}
	return out, err
}

func fromLibvirtGuestInfo(t InfoType, gi *libvirt.DomainGuestInfo) *GuestInfoReply {
	out := &GuestInfoReply{}
	switch t {
	case InfoUsers:
		out.Users = []UserInfo{}
		for _, u := range gi.Users {
			out.Users = append(out.Users, UserInfo{User: u.Name, Domain: u.Domain, LoginTime: float64(u.LoginTime) / 1000})
		}
	case InfoOS:
		if o := gi.OS; o != nil && (o.IDSet || o.NameSet || o.KernelReleaseSet || o.MachineSet || o.PrettyNameSet) {
			out.OS = &OSInfo{ID: o.ID, Name: o.Name, PrettyName: o.PrettyName, Version: o.Version, VersionID: o.VersionID,
				Variant: o.Variant, VariantID: o.VariantID, KernelRelease: o.KernelRelease, KernelVersion: o.KernelVersion, Machine: o.Machine}
		}
	case InfoTimezone:
		if tz := gi.TimeZone; tz != nil && tz.OffsetSet {
			off := tz.Offset
			out.Timezone = &TimezoneInfo{Zone: tz.Name, Offset: &off}
		}
	case InfoHostname:
		if gi.HostnameSet {
			out.Hostname = &HostName{HostName: gi.Hostname}
		}
	case InfoFilesystem:
		out.FS = []FSInfo{}
		for _, f := range gi.FileSystems {
			fi := FSInfo{Name: f.Name, Mountpoint: f.MountPoint, Type: f.FSType}
			if f.TotalBytesSet {
				v := f.TotalBytes
				fi.TotalBytes = &v
			}
			if f.UsedBytesSet {
				v := f.UsedBytes
				fi.UsedBytes = &v
			}
			for _, d := range f.Disks {
				fi.Disk = append(fi.Disk, FSDisk{Serial: d.Serial, Dev: d.Device})
			}
			out.FS = append(out.FS, fi)
		}
	case InfoDisks:
		out.Disks = []DiskInfo{}
		for _, d := range gi.Disks {
			di := DiskInfo{Name: d.Name, Partition: d.Partition, Alias: d.Alias}
			if d.SerialSet {
				di.Address = &DiskAddress{Serial: d.Serial}
			}
			out.Disks = append(out.Disks, di)
		}
	}
	return out
}

// Interfaces implements DomainAPI with ListAllInterfaceAddresses(SRC_AGENT).
func (a *LibvirtAPI) Interfaces(ctx context.Context, uuid string, timeout time.Duration) ([]NetInterface, error) {
	var out []NetInterface
	err := a.with(ctx, uuid, CmdInterfaces, timeout, true, func(d *libvirt.Domain) error {
		ifs, err := d.ListAllInterfaceAddresses(libvirt.DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT)
		if err != nil {
			return err
		}
		out = make([]NetInterface, 0, len(ifs))
		for _, i := range ifs {
			ni := NetInterface{Name: i.Name, HardwareAddress: i.Hwaddr}
			for _, ad := range i.Addrs {
				typ := "ipv6"
				if ad.Type == libvirt.IP_ADDR_TYPE_IPV4 {
					typ = "ipv4"
				}
				p := int(ad.Prefix)
				ni.IPAddresses = append(ni.IPAddresses, IPAddress{Type: typ, Address: ad.Addr, Prefix: &p})
			}
			out = append(out, ni)
		}
		return nil
	})
	return out, err
}

// VCPUs implements DomainAPI with GetGuestVcpus. The Go binding (v1.11010.0) fails to parse
// libvirt 9.0's reply when no vCPU is offlinable (an empty cpulist: "Malformed cpu map string");
// only in that case it falls back to raw guest-get-vcpus.
func (a *LibvirtAPI) VCPUs(ctx context.Context, uuid string, timeout time.Duration) ([]VCPU, error) {
	var out []VCPU
	fallback := false
	err := a.with(ctx, uuid, CmdVCPUs, timeout, true, func(d *libvirt.Domain) error {
		gv, err := d.GetGuestVcpus(0)
		if err != nil {
			var le libvirt.Error
			if !errors.As(err, &le) && strings.Contains(err.Error(), "Malformed cpu map") {
				fallback = true
				return nil
			}
			return err
		}
		if gv == nil || (!gv.VcpusSet && !gv.OnlineSet) {
			return &Error{Class: ErrAgentError, Command: CmdVCPUs, Err: errors.New("reply without vcpus")}
		}
		n := max(len(gv.Vcpus), len(gv.Online))
		for i := 0; i < n; i++ {
			exists := (i < len(gv.Vcpus) && gv.Vcpus[i]) || !gv.VcpusSet
			online := i < len(gv.Online) && gv.Online[i]
			if !exists && !online {
				continue
			}
			out = append(out, VCPU{LogicalID: i, Online: online, CanOffline: i < len(gv.Offlinable) && gv.Offlinable[i]})
		}
		return nil
	})
	if err == nil && fallback {
		raw, err := a.raw(ctx, uuid, CmdVCPUs, nil, timeout)
		if err != nil {
			return nil, err
		}
		return decode[[]VCPU](CmdVCPUs, raw)
	}
	return out, err
}

// Shutdown implements DomainAPI: powerdown through ShutdownFlags(GUEST_AGENT) (raw
// guest-shutdown always reports an error because the agent never answers); halt through raw
// guest-shutdown, where the agent disappearing counts as success.
func (a *LibvirtAPI) Shutdown(ctx context.Context, uuid string, mode ShutdownMode, timeout time.Duration) error {
	if mode == ShutdownHalt {
		_, err := a.raw(ctx, uuid, CmdShutdown, map[string]any{"mode": "halt"}, timeout)
		return agentGone(err)
	}
	return agentGone(a.with(ctx, uuid, CmdShutdown, timeout, true, func(d *libvirt.Domain) error {
		return d.ShutdownFlags(libvirt.DOMAIN_SHUTDOWN_GUEST_AGENT)
	}))
}

// agentGone treats the agent vanishing right after a power command as success: guest-shutdown
// never answers, and libvirt 9.0 sometimes reports the agent's EOF ("End of file from agent
// socket", "Guest agent disappeared while executing command") instead of waiting for it.
// Callers confirm the outcome through domain lifecycle events.
func agentGone(err error) error {
	if err == nil {
		return nil
	}
	m := strings.ToLower(err.Error())
	if strings.Contains(m, "end of file from agent") || strings.Contains(m, "disappeared") {
		return nil
	}
	return err
}

// Reboot implements DomainAPI with Reboot(GUEST_AGENT).
func (a *LibvirtAPI) Reboot(ctx context.Context, uuid string, timeout time.Duration) error {
	return agentGone(a.with(ctx, uuid, CmdShutdown, timeout, true, func(d *libvirt.Domain) error {
		return d.Reboot(libvirt.DOMAIN_REBOOT_GUEST_AGENT)
	}))
}

// Suspend implements DomainAPI with virDomainPMSuspendForDuration(target, 0, 0): libvirt sends
// guest-suspend-ram|hybrid|disk to the agent (and refuses a target the domain's <pm> element
// disables). Like guest-shutdown, a successful suspend never answers; the caller confirms it
// through the domain's PMSUSPENDED (or, for disk, STOPPED) lifecycle event.
func (a *LibvirtAPI) Suspend(ctx context.Context, uuid, cmd string, timeout time.Duration) error {
	var target libvirt.NodeSuspendTarget
	switch cmd {
	case CmdSuspendRAM:
		target = libvirt.NODE_SUSPEND_TARGET_MEM
	case CmdSuspendHybrid:
		target = libvirt.NODE_SUSPEND_TARGET_HYBRID
	case CmdSuspendDisk:
		target = libvirt.NODE_SUSPEND_TARGET_DISK
	default:
		return &Error{Class: ErrUnsupported, Command: cmd, Err: fmt.Errorf("unknown suspend command %q", cmd)}
	}
	return agentGone(a.with(ctx, uuid, cmd, timeout, true, func(d *libvirt.Domain) error {
		return d.PMSuspendForDuration(target, 0, 0)
	}))
}

// FSFreeze implements DomainAPI with virDomainFSFreeze.
func (a *LibvirtAPI) FSFreeze(ctx context.Context, uuid string, mps []string, timeout time.Duration) error {
	return a.with(ctx, uuid, CmdFSFreeze, timeout, true, func(d *libvirt.Domain) error { return d.FSFreeze(mps, 0) })
}

// FSThaw implements DomainAPI with virDomainFSThaw.
func (a *LibvirtAPI) FSThaw(ctx context.Context, uuid string, mps []string, timeout time.Duration) error {
	return a.with(ctx, uuid, CmdFSThaw, timeout, true, func(d *libvirt.Domain) error { return d.FSThaw(mps, 0) })
}

// SetTime implements DomainAPI with virDomainSetTime.
func (a *LibvirtAPI) SetTime(ctx context.Context, uuid string, t time.Time, timeout time.Duration) error {
	return a.with(ctx, uuid, CmdSetTime, timeout, true, func(d *libvirt.Domain) error {
		return d.SetTime(t.Unix(), uint(t.Nanosecond()), 0)
	})
}

// SetVCPUs implements DomainAPI with virDomainSetGuestVcpus, which fails unless the agent
// changed every listed vCPU.
func (a *LibvirtAPI) SetVCPUs(ctx context.Context, uuid string, ids []int, online bool, timeout time.Duration) error {
	if len(ids) == 0 {
		return nil
	}
	hi := slices.Max(ids)
	if slices.Min(ids) < 0 || hi > MaxGuestVCPUID {
		return &Error{Class: ErrAgentError, Command: CmdSetVCPUs, Err: fmt.Errorf("vCPU ids %s outside 0-%d", FormatCPUList(ids), MaxGuestVCPUID)}
	}
	mask := make([]bool, hi+1)
	for _, id := range ids {
		mask[id] = true
	}
	return a.with(ctx, uuid, CmdSetVCPUs, timeout, true, func(d *libvirt.Domain) error {
		return d.SetGuestVcpus(mask, online, 0)
	})
}
