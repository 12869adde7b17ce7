package qga

import (
	"context"
	"encoding/json"
	"time"
)

// Route is a DomainAPI that sends each call to the DomainAPI it returns for the call's domain:
// agentd uses it when a node has both libvirt domains (LibvirtAPI) and domains reached on a
// direct agent socket (SocketAPI).
type Route func(uuid string) DomainAPI

var _ DomainAPI = Route(nil)

// Raw implements DomainAPI.
func (r Route) Raw(ctx context.Context, uuid, cmd string, timeout time.Duration) (json.RawMessage, error) {
	return r(uuid).Raw(ctx, uuid, cmd, timeout)
}

// GuestInfo implements DomainAPI.
func (r Route) GuestInfo(ctx context.Context, uuid string, t InfoType, timeout time.Duration) (*GuestInfoReply, error) {
	return r(uuid).GuestInfo(ctx, uuid, t, timeout)
}

// Interfaces implements DomainAPI.
func (r Route) Interfaces(ctx context.Context, uuid string, timeout time.Duration) ([]NetInterface, error) {
	return r(uuid).Interfaces(ctx, uuid, timeout)
}

// VCPUs implements DomainAPI.
func (r Route) VCPUs(ctx context.Context, uuid string, timeout time.Duration) ([]VCPU, error) {
	return r(uuid).VCPUs(ctx, uuid, timeout)
}

// Shutdown implements DomainAPI.
func (r Route) Shutdown(ctx context.Context, uuid string, mode ShutdownMode, timeout time.Duration) error {
	return r(uuid).Shutdown(ctx, uuid, mode, timeout)
}

// Reboot implements DomainAPI.
func (r Route) Reboot(ctx context.Context, uuid string, timeout time.Duration) error {
	return r(uuid).Reboot(ctx, uuid, timeout)
}

// Suspend implements DomainAPI.
func (r Route) Suspend(ctx context.Context, uuid, cmd string, timeout time.Duration) error {
	return r(uuid).Suspend(ctx, uuid, cmd, timeout)
}

// FSFreeze implements DomainAPI.
func (r Route) FSFreeze(ctx context.Context, uuid string, mountpoints []string, timeout time.Duration) error {
	return r(uuid).FSFreeze(ctx, uuid, mountpoints, timeout)
}

// FSThaw implements DomainAPI.
func (r Route) FSThaw(ctx context.Context, uuid string, mountpoints []string, timeout time.Duration) error {
	return r(uuid).FSThaw(ctx, uuid, mountpoints, timeout)
}

// SetVCPUs implements DomainAPI.
func (r Route) SetVCPUs(ctx context.Context, uuid string, ids []int, online bool, timeout time.Duration) error {
	return r(uuid).SetVCPUs(ctx, uuid, ids, online, timeout)
}

// SetTime implements DomainAPI.
func (r Route) SetTime(ctx context.Context, uuid string, t time.Time, timeout time.Duration) error {
	return r(uuid).SetTime(ctx, uuid, t, timeout)
}
