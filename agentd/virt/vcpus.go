package virt

import (
	"context"
	"fmt"

	"libvirt.org/go/libvirt"
)

// DomainVCPUs reads a running domain's vCPU counts from libvirt (virDomainGetVcpusFlags of the
// live definition): the vCPUs plugged in, which the guest sees, and the most the domain can
// have. A SetVCPUs command is checked against both before any agent is asked.
type DomainVCPUs struct{ M *Manager }

// VCPUs returns the domain's plugged-in and maximum vCPU counts.
func (v DomainVCPUs) VCPUs(_ context.Context, uuid string) (current, maximum int, err error) {
	d, err := v.M.LookupDomain(uuid)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = d.Free() }()
	cur, err := d.GetVcpusFlags(libvirt.DOMAIN_VCPU_LIVE)
	if err != nil {
		return 0, 0, fmt.Errorf("vCPUs of %s: %w", uuid, err)
	}
	most, err := d.GetVcpusFlags(libvirt.DOMAIN_VCPU_LIVE | libvirt.DOMAIN_VCPU_MAXIMUM)
	if err != nil {
		return 0, 0, fmt.Errorf("maximum vCPUs of %s: %w", uuid, err)
	}
	return int(cur), int(most), nil
}
