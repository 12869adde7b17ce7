package qga

import (
	"context"
	"encoding/json"
	"time"
)

// ShutdownMode selects how the guest powers off.
type ShutdownMode string

// Shutdown modes.
const (
	// ShutdownPowerdown powers the guest off (libvirt ShutdownFlags(GUEST_AGENT)).
	ShutdownPowerdown ShutdownMode = "powerdown"
	// ShutdownHalt halts the guest without powering off. libvirt has no typed API for it, so it
	// goes through raw guest-shutdown {"mode":"halt"}; the agent never answers that command, so
	// "agent disappeared" after sending counts as success.
	ShutdownHalt ShutdownMode = "halt"
)

// DomainAPI is everything the poller and the request methods need from a transport. Each call
// addresses one domain by UUID and must return within about timeout (implementations set the
// agent response timeout accordingly). Errors should be *Error (see Classify helpers); other
// errors count as ErrLibvirtError. Implementations need not serialise calls per domain: the
// QemuGuestAgentPoller guarantees at most one in-flight call per domain.
type DomainAPI interface {
	// Raw sends one QGA command without arguments and returns its "return" member. Used only
	// where libvirt has no typed API (guest-info, guest-get-devices, guest-ping).
	Raw(ctx context.Context, uuid, cmd string, timeout time.Duration) (json.RawMessage, error)
	// GuestInfo fetches exactly one InfoType (never a mask, never 0).
	GuestInfo(ctx context.Context, uuid string, t InfoType, timeout time.Duration) (*GuestInfoReply, error)
	// Interfaces returns the guest's interfaces as the agent reports them.
	Interfaces(ctx context.Context, uuid string, timeout time.Duration) ([]NetInterface, error)
	// VCPUs returns the guest's vCPUs as the agent reports them.
	VCPUs(ctx context.Context, uuid string, timeout time.Duration) ([]VCPU, error)
	// Shutdown asks the agent to shut the guest down.
	Shutdown(ctx context.Context, uuid string, mode ShutdownMode, timeout time.Duration) error
	// Reboot asks the agent to reboot the guest.
	Reboot(ctx context.Context, uuid string, timeout time.Duration) error
	// Suspend asks the agent to suspend the guest: cmd is CmdSuspendRAM, CmdSuspendHybrid or
	// CmdSuspendDisk.
	Suspend(ctx context.Context, uuid, cmd string, timeout time.Duration) error
	// FSFreeze freezes the given mountpoints (all when empty).
	FSFreeze(ctx context.Context, uuid string, mountpoints []string, timeout time.Duration) error
	// FSThaw thaws the given mountpoints (all when empty).
	FSThaw(ctx context.Context, uuid string, mountpoints []string, timeout time.Duration) error
	// SetTime sets the guest clock to t.
	SetTime(ctx context.Context, uuid string, t time.Time, timeout time.Duration) error
	// SetVCPUs brings the guest's vCPUs with the given logical ids online (online true) or takes
	// them offline. It fails unless the guest changed every one of them.
	SetVCPUs(ctx context.Context, uuid string, ids []int, online bool, timeout time.Duration) error
}
