package virt

import (
	"context"
	"fmt"

	"libvirt.org/go/libvirt"
)

// PowerButton presses a domain's ACPI power button through libvirt: the explicit host-side
// fallback for Shutdown and Reboot commands when no guest agent can serve them. The guest OS
// decides what to do with the button (it may ignore it); success means libvirt delivered it.
type PowerButton struct{ M *Manager }

// ACPIShutdown sends the ACPI power button (shutdown request).
func (p PowerButton) ACPIShutdown(_ context.Context, uuid string) error {
	d, err := p.M.LookupDomain(uuid)
	if err != nil {
		return err
	}
	defer func() { _ = d.Free() }()
	if err := d.ShutdownFlags(libvirt.DOMAIN_SHUTDOWN_ACPI_POWER_BTN); err != nil {
		return fmt.Errorf("ACPI shutdown of %s: %w", uuid, err)
	}
	return nil
}

// ACPIReboot asks libvirt for an ACPI-driven reboot.
func (p PowerButton) ACPIReboot(_ context.Context, uuid string) error {
	d, err := p.M.LookupDomain(uuid)
	if err != nil {
		return err
	}
	defer func() { _ = d.Free() }()
	if err := d.Reboot(libvirt.DOMAIN_REBOOT_ACPI_POWER_BTN); err != nil {
		return fmt.Errorf("ACPI reboot of %s: %w", uuid, err)
	}
	return nil
}

// Destroy stops the domain: virDomainDestroyFlags(GRACEFUL) first (SIGTERM, libvirt waits a
// few seconds for QEMU to exit), then a plain destroy (SIGKILL) if QEMU did not exit.
func (p PowerButton) Destroy(_ context.Context, uuid string) error {
	d, err := p.M.LookupDomain(uuid)
	if err != nil {
		return err
	}
	defer func() { _ = d.Free() }()
	if gerr := d.DestroyFlags(libvirt.DOMAIN_DESTROY_GRACEFUL); gerr == nil {
		return nil
	}
	if err := d.DestroyFlags(libvirt.DOMAIN_DESTROY_DEFAULT); err != nil {
		return fmt.Errorf("destroy of %s: %w", uuid, err)
	}
	return nil
}

// Reset resets the domain (virDomainReset: the reset button, no guest shutdown); libvirt then
// emits its REBOOT event.
func (p PowerButton) Reset(_ context.Context, uuid string) error {
	d, err := p.M.LookupDomain(uuid)
	if err != nil {
		return err
	}
	defer func() { _ = d.Free() }()
	if err := d.Reset(0); err != nil {
		return fmt.Errorf("reset of %s: %w", uuid, err)
	}
	return nil
}

// ManagedSave saves the domain's memory to libvirt's managed save image and stops it
// (virDomainManagedSave): the host side of a Hibernate. The next start of the domain restores
// it (libvirt STARTED/RESTORED). libvirt pauses the domain for the save itself and resumes it
// when the save fails. The call returns when the save finished.
func (p PowerButton) ManagedSave(_ context.Context, uuid string) error {
	d, err := p.M.LookupDomain(uuid)
	if err != nil {
		return err
	}
	defer func() { _ = d.Free() }()
	if err := d.ManagedSave(0); err != nil {
		return fmt.Errorf("managed save of %s: %w", uuid, err)
	}
	return nil
}

// HasManagedSaveImage reports whether libvirt holds a managed save image of the domain.
func (p PowerButton) HasManagedSaveImage(_ context.Context, uuid string) (bool, error) {
	d, err := p.M.LookupDomain(uuid)
	if err != nil {
		return false, err
	}
	defer func() { _ = d.Free() }()
	ok, err := d.HasManagedSaveImage(0)
	if err != nil {
		return false, fmt.Errorf("managed save image of %s: %w", uuid, err)
	}
	return ok, nil
}
