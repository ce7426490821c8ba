package diskfmt

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/bulkhead-os/bulkhead/internal/manifest"
)

// OVAOptions describe the virtual machine of an OVA.
type OVAOptions struct {
	Name     string // the virtual system's name (the image name and version)
	Info     string // its annotation
	DiskSize int64  // the disk's capacity in bytes
	VMDK     string // the stream-optimized VMDK to carry
	MemoryMB int
	CPUs     int
	Time     time.Time // the tar entries' time
}

// ovfEscape escapes s for XML text and attributes.
func ovfEscape(s string) string {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// ovfDescriptor is an OVF 1.0 envelope for one disk on a SATA (AHCI)
// controller, one E1000 network card and BIOS firmware (the image boots
// with BIOS and UEFI alike). VirtualBox and vSphere both import it; the
// image has the ahci and e1000 drivers, not LSI Logic's.
func ovfDescriptor(o OVAOptions, vmdkName string, vmdkSize int64) []byte {
	name := ovfEscape(o.Name)
	return fmt.Appendf(nil, `<?xml version="1.0" encoding="UTF-8"?>
<Envelope ovf:version="1.0" xml:lang="en-US" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
    <File ovf:href="%s" ovf:id="file1" ovf:size="%d"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="%d" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection>
    <Info>The list of logical networks</Info>
    <Network ovf:name="NAT">
      <Description>The network the host is on</Description>
    </Network>
  </NetworkSection>
  <VirtualSystem ovf:id="%s">
    <Info>A Bulkhead container host</Info>
    <Name>%s</Name>
    <AnnotationSection>
      <Info>Annotation</Info>
      <Annotation>%s</Annotation>
    </AnnotationSection>
    <OperatingSystemSection ovf:id="101">
      <Info>The guest operating system</Info>
      <Description>Other Linux (64-bit)</Description>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemIdentifier>%s</vssd:VirtualSystemIdentifier>
        <vssd:VirtualSystemType>vmx-13 virtualbox-2.2</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:Description>Number of virtual CPUs</rasd:Description>
        <rasd:ElementName>%d virtual CPUs</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>%d</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:Description>Memory size</rasd:Description>
        <rasd:ElementName>%d MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>%d</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:Description>SATA controller</rasd:Description>
        <rasd:ElementName>sataController0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>AHCI</rasd:ResourceSubType>
        <rasd:ResourceType>20</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:ElementName>disk1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>
        <rasd:Connection>NAT</rasd:Connection>
        <rasd:ElementName>ethernet0</rasd:ElementName>
        <rasd:InstanceID>5</rasd:InstanceID>
        <rasd:ResourceSubType>E1000</rasd:ResourceSubType>
        <rasd:ResourceType>10</rasd:ResourceType>
      </Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
`, ovfEscape(vmdkName), vmdkSize, o.DiskSize, name, name, ovfEscape(o.Info), name,
		o.CPUs, o.CPUs, o.MemoryMB, o.MemoryMB)
}

// WriteOVA writes an OVA to w: a tar of the OVF descriptor (first, as the
// OVF specification requires), the VMDK and a manifest of their SHA-256s.
func WriteOVA(w io.Writer, o OVAOptions) error {
	st, err := os.Stat(o.VMDK)
	if err != nil {
		return fmt.Errorf("writing OVA: the VMDK: %w", err)
	}
	base := safeName(o.Name)
	vmdkName := base + "-disk1.vmdk"
	ovf := ovfDescriptor(o, vmdkName, st.Size())
	_, vmdkSum, err := manifest.HashFile(o.VMDK)
	if err != nil {
		return fmt.Errorf("writing OVA: %w", err)
	}
	ovfSum := sha256.Sum256(ovf)
	mf := fmt.Appendf(nil, "SHA256(%s.ovf)= %x\nSHA256(%s)= %s\n", base, ovfSum, vmdkName, vmdkSum)

	tw := tar.NewWriter(w)
	add := func(name string, size int64, body io.Reader) error {
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: size, ModTime: o.Time, Typeflag: tar.TypeReg, Format: tar.FormatUSTAR}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("writing OVA entry %s: %w", name, err)
		}
		if _, err := io.Copy(tw, body); err != nil {
			return fmt.Errorf("writing OVA entry %s: %w", name, err)
		}
		return nil
	}
	if err := add(base+".ovf", int64(len(ovf)), bytes.NewReader(ovf)); err != nil {
		return err
	}
	f, err := os.Open(o.VMDK)
	if err != nil {
		return fmt.Errorf("writing OVA: %w", err)
	}
	defer f.Close()
	if err := add(vmdkName, st.Size(), f); err != nil {
		return err
	}
	if err := add(base+".mf", int64(len(mf)), bytes.NewReader(mf)); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("writing OVA: %w", err)
	}
	return nil
}

// safeName is s with anything but letters, digits, '.', '-' and '_'
// replaced, for file names inside archives.
func safeName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) == 0 || b[0] == '.' {
		return "disk" + string(b)
	}
	return string(b)
}
