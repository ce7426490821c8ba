package diskfmt

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/bulkhead-os/bulkhead/cloudinit/seed"
)

// A Vagrant box for the libvirt provider (vagrant-libvirt's box format 1):
// a tar of box.img (the qcow2 disk), metadata.json and a Vagrantfile. The
// vagrant user is made by Bulkhead's own first-boot provisioning: the box
// carries a NoCloud seed (seed.iso, volume label cidata) whose user-data
// creates it with Vagrant's published insecure RSA key (Vagrant replaces
// it with a key of its own on the first `vagrant up`) and passwordless
// sudo, and the box's Vagrantfile attaches it as a CD-ROM.

// VagrantInsecureKeys are the public halves of Vagrant's well-known
// insecure key pairs: the ed25519 one (hashicorp/vagrant keys/, Vagrant
// 2.3.8 and later) and the RSA one (keys/vagrant.pub, the only one in
// Debian's vagrant 2.3.4). Anyone holding their published private halves
// logs in wherever they are authorized.
var VagrantInsecureKeys = []string{
	"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIN1YdxBpNlzxDqfJyw/QKow1F+wvG9hXGoqiysfJOn5Y vagrant insecure public key",
	"ssh-rsa AAAAB3NzaC1yc2EAAAABIwAAAQEA6NF8iallvQVp22WDkTkyrtvp9eWW6A8YVr+kz4TjGYe7gHzIw+niNltGEFHzD8+v1I2YJ6oXevct1YeS0o9HZyN1Q9qgCgzUFtdOKLv6IedplqoPkcmF0aYet2PkEDo3MlTBckFXPITAMzF8dJSIFo9D8HfdOV0IAdx4O7PtixWKn5y2hMNG0zQPyUecp4pzC6kivAIhyfHilFR61RGL+GPXQ2MWZWFYbAGjyiYJnAmCP3NOTd0jMZEnDkbUvxhMmBYSdETk1rRgm+R4LOzFUGaHqHDLKLX+FIPKcF96hrucXzcWyLbIbEgE98OHlnVYCzRdK8jlqm8tehUc9c9WhQ== vagrant insecure public key",
}

// VagrantBoxKey is the insecure key the box authorizes: the RSA one,
// which every Vagrant logs in with (2.3.8 and later offer both insecure
// keys) and every Vagrant removes once its own key is in place.
// Vagrant before 2.3.8 (Debian 12's 2.3.4) removes only the lines of its
// keys/vagrant.pub, which is this key alone: an ed25519 insecure key in
// the box would stay authorized after `vagrant up` (TestVagrantUp saw it
// with the first boxes, which carried both).
var VagrantBoxKey = VagrantInsecureKeys[1]

// VagrantUserData is the cloud-config of the box's seed.
func VagrantUserData() []byte {
	var b bytes.Buffer
	b.WriteString("#cloud-config\n" +
		"# The vagrant user of a Vagrant box: Vagrant's insecure RSA key, passwordless sudo.\n" +
		"users:\n" +
		"  - name: vagrant\n" +
		"    gecos: Vagrant\n" +
		"    shell: /bin/bash\n" +
		"    lock_passwd: true\n" +
		"    sudo: \"ALL=(ALL) NOPASSWD:ALL\"\n" +
		"    ssh_authorized_keys:\n" +
		"      - " + VagrantBoxKey + "\n")
	return b.Bytes()
}

// vagrantMetaData is the seed's meta-data; every VM made from the box is
// a new disk, so one instance-id provisions each of them once.
const vagrantMetaData = "instance-id: bulkhead-vagrant\n"

// vagrantfile is the box's Vagrantfile: libvirt defaults for a Bulkhead
// host, the seed attached as a SATA CD-ROM, and no /vagrant synced folder
// (the host has no rsync or NFS client; /usr is read-only).
const vagrantfile = `# Vagrantfile of a Bulkhead box for the libvirt provider (vagrant-libvirt).
Vagrant.configure("2") do |config|
  config.vm.guest = :linux
  config.vm.synced_folder ".", "/vagrant", disabled: true
  config.ssh.username = "vagrant"
  config.vm.provider :libvirt do |libvirt|
    libvirt.driver = "kvm"
    libvirt.memory = 2048
    libvirt.cpus = 2
    libvirt.disk_bus = "virtio"
    libvirt.nic_model_type = "virtio"
    libvirt.graphics_type = "none"
    # The NoCloud seed that makes the vagrant user on first boot.
    libvirt.storage :file, device: :cdrom, bus: "sata", dev: "sda", path: File.join(__dir__, "seed.iso")
  end
end
`

// VagrantMetadata is the box's metadata.json for a disk of size bytes:
// virtual_size is in GiB, rounded up.
func VagrantMetadata(size int64) []byte {
	b, _ := json.Marshal(map[string]any{
		"provider": "libvirt", "format": "qcow2",
		"virtual_size": (size + (1 << 30) - 1) >> 30,
	})
	return append(b, '\n')
}

// VagrantOptions are the inputs of a box.
type VagrantOptions struct {
	Qcow2    string    // the build's disk.qcow2, carried as box.img
	DiskSize int64     // its virtual size in bytes
	Work     string    // a scratch directory for the seed
	Time     time.Time // the tar entries' time
}

// WriteVagrantBox writes the box to w.
func WriteVagrantBox(w io.Writer, o VagrantOptions) error {
	img, err := os.Open(o.Qcow2)
	if err != nil {
		return fmt.Errorf("writing Vagrant box: its box.img: %w", err)
	}
	defer img.Close()
	st, err := img.Stat()
	if err != nil {
		return fmt.Errorf("writing Vagrant box: %w", err)
	}
	seedPath := filepath.Join(o.Work, "seed.iso")
	if err := seed.Write(seedPath, seed.Files{UserData: VagrantUserData(), MetaData: []byte(vagrantMetaData)}, seed.FormatISO); err != nil {
		return fmt.Errorf("writing Vagrant box: its seed: %w", err)
	}
	iso, err := os.ReadFile(seedPath)
	if err != nil {
		return fmt.Errorf("writing Vagrant box: %w", err)
	}
	meta := VagrantMetadata(o.DiskSize)
	tw := tar.NewWriter(w)
	entries := []struct {
		name string
		size int64
		r    io.Reader
	}{
		{"metadata.json", int64(len(meta)), bytes.NewReader(meta)},
		{"Vagrantfile", int64(len(vagrantfile)), bytes.NewReader([]byte(vagrantfile))},
		{"seed.iso", int64(len(iso)), bytes.NewReader(iso)},
		{"box.img", st.Size(), img},
	}
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Mode: 0o644, Size: e.size, ModTime: o.Time, Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("writing Vagrant box entry %s: %w", e.name, err)
		}
		if _, err := io.Copy(tw, e.r); err != nil {
			return fmt.Errorf("writing Vagrant box entry %s: %w", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("writing Vagrant box: %w", err)
	}
	return nil
}
