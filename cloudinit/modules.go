package cloudinit

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/bulkhead-os/bulkhead/cloudinit/accounts"
	"github.com/bulkhead-os/bulkhead/cloudinit/cloudconfig"
	"github.com/bulkhead-os/bulkhead/cloudinit/ignition"
	"github.com/bulkhead-os/bulkhead/cloudinit/networkd"
	"github.com/bulkhead-os/bulkhead/cloudinit/units"
	"github.com/bulkhead-os/bulkhead/hostd/engine"
	"github.com/bulkhead-os/bulkhead/internal/fsroot"
	"github.com/bulkhead-os/bulkhead/internal/run"
	storagesetup "github.com/bulkhead-os/bulkhead/storage-setup"
	"github.com/bulkhead-os/bulkhead/updater"
	"github.com/bulkhead-os/bulkhead/updater/reboot"
	"go.yaml.in/yaml/v3"
)

func (p *provisioner) modules() []module {
	return []module{
		{"bootcmd", StageInit, PerBoot, p.bootcmd},
		{"boothooks", StageInit, PerBoot, p.runBoothooks},
		{"write_files", StageInit, PerInstance, func(ctx context.Context) error { return p.writeFiles(false) }},
		{"growpart", StageInit, PerBoot, p.growpart},
		{"resize_rootfs", StageInit, PerBoot, p.resizeRootfs},
		{"mounts", StageInit, PerInstance, p.mounts},
		{"hostname", StageInit, PerInstance, p.hostname},
		{"update_etc_hosts", StageInit, PerBoot, p.updateEtcHosts},
		{"users_groups", StageInit, PerInstance, p.usersGroups},
		{"ssh", StageInit, PerInstance, p.ssh},
		{"ssh_host_keys", StageInit, PerInstance, p.sshHostKeys},
		{"set_passwords", StageInit, PerInstance, p.setPasswords},
		{"timezone", StageInit, PerInstance, p.timezone},
		{"network_config", StageInit, PerInstance, p.networkConfig},
		{"ignition", StageInit, PerInstance, p.applyIgnition},
		{"coreos_units", StageInit, PerInstance, p.coreosUnits},
		{"bulkhead", StageInit, PerInstance, p.bulkhead},
		// The host keys' fingerprints go to the console early in the final
		// stage, before runcmd, so a runcmd that hangs cannot hide them.
		{"keys_to_console", StageFinal, PerInstance, p.keysToConsole},
		{"write_files_deferred", StageFinal, PerInstance, func(ctx context.Context) error { return p.writeFiles(true) }},
		{"runcmd", StageFinal, PerInstance, p.runcmd},
		{"scripts_user", StageFinal, PerInstance, p.scriptsUser},
		{"final_message", StageFinal, PerBoot, p.finalMessage},
		{"power_state", StageFinal, PerInstance, p.powerState},
	}
}

// DefaultUser is the account "default" in users stands for, and the one
// that gets meta-data's SSH keys: as Container Linux and Fedora CoreOS.
var defaultUser = cloudconfig.User{
	Name:   "core",
	Gecos:  "Bulkhead default user",
	Groups: cloudconfig.StringList{"adm", "sudo"},
	Sudo:   cloudconfig.Sudo{"ALL=(ALL) NOPASSWD:ALL"},
	Shell:  "/bin/bash",
}

// scriptsDir is where bootcmd, runcmd and user scripts are written to run.
const scriptsDir = StateDir + "/scripts"

// runScript writes a script under the state directory and runs it, its
// output going to the console, INSTANCE_ID in its environment. key names
// the input in errors.
func (p *provisioner) runScript(ctx context.Context, key, name string, content []byte) error {
	path := p.o.Root.Join(scriptsDir, name)
	if err := fsroot.WriteFile(path, content, 0o700); err != nil {
		return err
	}
	if p.o.Offline {
		path = scriptsDir + "/" + name // as seen inside the chroot
	}
	// Standard output and error both reach the console and the output log
	// (Console is both), as in cloud-init-output.log.
	cmd := run.Cmd{Name: path, Env: []string{"INSTANCE_ID=" + p.data.MetaData.InstanceID}, Stdout: p.o.Console, Stderr: p.o.Console}
	if !strings.HasPrefix(string(content), "#!") {
		cmd = run.Cmd{Name: "/bin/sh", Args: []string{path}, Env: cmd.Env, Stdout: cmd.Stdout, Stderr: cmd.Stderr}
	}
	if _, err := p.o.Runner.Run(ctx, cmd); err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

// shellScript renders bootcmd/runcmd as one sh script, as cloud-init's
// shellify does: a string is a shell line as written; a list has every
// element single-quoted, so a list is argv, never re-split or expanded. A
// failing line does not stop the next.
func shellScript(cmds []cloudconfig.Command) []byte {
	var b strings.Builder
	b.WriteString("#!/bin/sh\n")
	for _, c := range cmds {
		if c.Argv == nil {
			b.WriteString(c.Shell)
		} else {
			for i, a := range c.Argv {
				if i > 0 {
					b.WriteByte(' ')
				}
				b.WriteString("'" + strings.ReplaceAll(a, "'", `'\''`) + "'")
			}
		}
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

func (p *provisioner) bootcmd(ctx context.Context) error {
	if len(p.cfg.Bootcmd) == 0 {
		return errNothing
	}
	return p.runScript(ctx, "bootcmd", "bootcmd", shellScript(p.cfg.Bootcmd))
}

func (p *provisioner) runcmd(ctx context.Context) error {
	if len(p.cfg.Runcmd) == 0 {
		return errNothing
	}
	return p.runScript(ctx, "runcmd", "runcmd", shellScript(p.cfg.Runcmd))
}

func (p *provisioner) runBoothooks(ctx context.Context) error {
	if len(p.boothooks) == 0 {
		return errNothing
	}
	var errs []error
	for _, h := range p.boothooks {
		// The first line is the #cloud-boothook marker; the rest is a script.
		_, body, _ := strings.Cut(string(h.Content), "\n")
		if err := p.runScript(ctx, "cloud-boothook "+h.Name, "boothook-"+safeName(h.Name), []byte(body)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (p *provisioner) scriptsUser(ctx context.Context) error {
	if len(p.scripts) == 0 {
		return errNothing
	}
	var errs []error
	for _, s := range p.scripts {
		if err := p.runScript(ctx, "user-data script "+s.Name, "user-"+safeName(s.Name), s.Content); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]`)

func safeName(s string) string {
	s = unsafeChars.ReplaceAllString(filepath.Base(s), "_")
	if s == "" || s == "." || s == ".." {
		return "script"
	}
	return s
}

// writeFiles writes write_files entries whose defer flag matches (deferred
// ones run after users exist, so they can be owned by them).
func (p *provisioner) writeFiles(deferred bool) error {
	var errs []error
	n := 0
	for _, f := range p.cfg.WriteFiles {
		i := f.Index()
		if f.Defer != deferred {
			continue
		}
		n++
		if err := p.writeFile(f); err != nil {
			errs = append(errs, fmt.Errorf("write_files[%d] (%s): %w", i, f.Path, err))
		}
	}
	if n == 0 {
		return errNothing
	}
	return errors.Join(errs...)
}

func (p *provisioner) writeFile(f cloudconfig.WriteFile) error {
	if !filepath.IsAbs(f.Path) {
		return fmt.Errorf("path: must be absolute")
	}
	data, err := cloudconfig.DecodeContent(f.Content, f.Encoding)
	if err != nil {
		return fmt.Errorf("content: %w", err)
	}
	uid, gid, err := p.owner(f.Owner)
	if err != nil {
		return fmt.Errorf("owner: %w", err)
	}
	mode := os.FileMode(0o644)
	if f.Permissions != nil {
		mode = os.FileMode(*f.Permissions)
	}
	// Through a handle on the directory inside the root: no symlink in
	// the tree (a user's home linked to /etc) can redirect the write, the
	// chmod or the chown, and the file is replaced, never followed.
	clean := filepath.Clean(f.Path)
	d, err := p.o.Root.MkdirAll(filepath.Dir(clean), 0o755)
	if err != nil {
		return err
	}
	defer d.Close()
	name := filepath.Base(clean)
	if f.Append {
		old, err := d.ReadFile(name, maxWriteFile)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		data = append(old, data...)
	}
	var owner *fsroot.Owner
	if os.Geteuid() == 0 { // unprivileged runs (unit tests) cannot give files away
		owner = &fsroot.Owner{UID: uid, GID: gid}
	}
	return d.WriteFile(name, data, mode, owner)
}

// maxWriteFile bounds a file write_files appends to (cloud-init has none;
// 64 MiB is far beyond a configuration file).
const maxWriteFile = 64 << 20

// owner resolves "user:group" (default root:root) in the root's databases.
func (p *provisioner) owner(spec string) (int, int, error) {
	if spec == "" {
		return 0, 0, nil
	}
	user, group, hasGroup := strings.Cut(spec, ":")
	uid, gid := 0, 0
	if user != "" && user != "root" {
		e, ok := accounts.Lookup(p.o.Root, user)
		if !ok {
			return 0, 0, fmt.Errorf("no user %q", user)
		}
		uid, gid = e.UID, e.GID
	}
	if hasGroup && group != "" && group != "root" {
		g, ok := accounts.LookupGroup(p.o.Root, group)
		if !ok {
			return 0, 0, fmt.Errorf("no group %q", group)
		}
		gid = g
	} else if hasGroup && group == "root" {
		gid = 0
	}
	return uid, gid, nil
}

func (p *provisioner) hostname(ctx context.Context) error {
	c := p.cfg
	if c.PreserveHostname {
		return errNothing
	}
	name, fqdn := p.hostnames()
	if name == "" {
		return errNothing
	}
	if c.PreferFQDN && c.FQDN != "" {
		name = fqdn
	}
	if !validHostname(name) {
		return fmt.Errorf("hostname: %q is not a valid host name", name)
	}
	if err := fsroot.WriteFile(p.o.Root.Join("/etc/hostname"), []byte(name+"\n"), 0o644); err != nil {
		return err
	}
	if p.o.Offline {
		return nil // the tree's /etc/hostname is all there is to set
	}
	if _, err := p.o.Runner.Run(ctx, run.Cmd{Name: "hostname", Args: []string{name}}); err != nil {
		return fmt.Errorf("hostname: %w", err)
	}
	return nil
}

var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

func validHostname(s string) bool { return len(s) <= 253 && hostnameRE.MatchString(s) }

// defaultUserOf is the account "default" stands for: the image's default
// user with the top-level user key applied (a name, or a mapping whose
// set fields replace the defaults), as cloud-init's normalize_users_groups.
func (p *provisioner) defaultUserOf() cloudconfig.User {
	d := defaultUser
	u := p.cfg.User
	if u == nil {
		return d
	}
	if u.Name != "" {
		d.Name = u.Name
	}
	if u.Gecos != "" {
		d.Gecos = u.Gecos
	}
	if u.Groups != nil {
		d.Groups = u.Groups
	}
	if u.Sudo != nil {
		d.Sudo = u.Sudo
	}
	if u.Shell != "" {
		d.Shell = u.Shell
	}
	d.PrimaryGroup, d.Homedir, d.UID = u.PrimaryGroup, u.Homedir, u.UID
	d.LockPasswd, d.LockPasswdDash = u.LockPasswd, u.LockPasswdDash
	d.Passwd, d.HashedPasswd, d.PlainTextPasswd = u.Passwd, u.HashedPasswd, u.PlainTextPasswd
	d.SSHAuthorizedKeys, d.SSHAuthorizedKeysDash = u.SSHAuthorizedKeys, u.SSHAuthorizedKeysDash
	return d
}

// users returns the users to create, with "default" (or an absent users
// key, or a top-level user key, which cloud-init adds to users) standing
// for the default user.
func (p *provisioner) users() (list []cloudconfig.User, hasDefault bool) {
	if p.cfg.Users == nil {
		return []cloudconfig.User{p.defaultUserOf()}, true
	}
	for _, u := range p.cfg.Users {
		if u.Default {
			if hasDefault {
				continue
			}
			d := p.defaultUserOf()
			d.SetIndexFrom(u)
			list = append(list, d)
			hasDefault = true
			continue
		}
		list = append(list, u)
	}
	if !hasDefault && p.cfg.User != nil {
		list = append(list, p.defaultUserOf())
		hasDefault = true
	}
	return list, hasDefault
}

func (p *provisioner) usersGroups(ctx context.Context) error {
	var errs []error
	for i, g := range p.cfg.Groups {
		if err := accounts.EnsureGroup(ctx, p.o.Runner, p.o.Root, accounts.Group{Name: g.Name, Members: g.Members}); err != nil {
			errs = append(errs, fmt.Errorf("groups[%d]: %w", i, err))
		}
	}
	list, _ := p.users()
	var sudoers strings.Builder
	for _, u := range list {
		path := fmt.Sprintf("users[%d] (%s)", u.Index(), u.Name)
		if err := p.user(ctx, u); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", path, err))
			continue
		}
		for _, rule := range u.Sudo {
			fmt.Fprintf(&sudoers, "%s %s\n", u.Name, rule)
		}
	}
	if sudoers.Len() > 0 {
		content := "# Written by bulkhead-provision from user-data.\n" + sudoers.String()
		if err := fsroot.WriteFile(p.o.Root.Join("/etc/sudoers.d/90-bulkhead-users"), []byte(content), 0o440); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (p *provisioner) user(ctx context.Context, u cloudconfig.User) error {
	au := accounts.User{
		Name: u.Name, Groups: u.Groups, System: u.System,
		NoCreateHome: u.NoCreateHome, NoUserGroup: u.NoUserGroup,
		Lock: u.Locked(),
	}
	if u.Gecos != "" {
		au.Gecos = &u.Gecos
	}
	if u.Homedir != "" {
		au.Homedir = &u.Homedir
	}
	if u.Shell != "" {
		au.Shell = &u.Shell
	}
	if u.PrimaryGroup != "" {
		au.PrimaryGroup = &u.PrimaryGroup
	}
	if u.UID != nil {
		id, err := strconv.Atoi(u.UID.String())
		if err != nil || id < 0 {
			return fmt.Errorf("uid: %q is not a number", u.UID.String())
		}
		au.UID = &id
	}
	switch {
	case u.HashedPasswd != "":
		au.PasswordHash = &u.HashedPasswd
	case u.Passwd != "":
		au.PasswordHash = &u.Passwd // cloud-init's passwd is a hash too
	}
	if err := accounts.Ensure(ctx, p.o.Runner, p.o.Root, au); err != nil {
		return err
	}
	if u.PlainTextPasswd != "" {
		if err := accounts.SetPasswords(ctx, p.o.Runner, []string{u.Name + ":" + u.PlainTextPasswd}, false); err != nil {
			return err
		}
		// lock_passwd (default true) holds even with a password: cloud-init
		// sets it, then locks the account, so it serves sudo but no login.
		if au.Lock {
			if _, err := p.o.Runner.Run(ctx, run.Cmd{Name: "usermod", Args: []string{"--lock", u.Name}}); err != nil {
				return fmt.Errorf("locking password of %s: %w", u.Name, err)
			}
		}
	}
	return accounts.AddAuthorizedKeys(p.o.Root, u.Name, u.AuthorizedKeys())
}

// ssh gives top-level and meta-data keys to the default user and sets
// sshd's password authentication. It runs before sshd starts, so a
// drop-in is enough, no reload.
func (p *provisioner) ssh(ctx context.Context) error {
	keys := append(append([]string{}, p.cfg.SSHAuthorizedKeys...), p.data.MetaData.PublicKeys...)
	did := false
	var errs []error
	if len(keys) > 0 {
		did = true
		if _, hasDefault := p.users(); !hasDefault {
			errs = append(errs, fmt.Errorf("ssh_authorized_keys: no default user to give %d key(s) to: add \"default\" to users or put the keys on a user", len(keys)))
		} else if err := accounts.AddAuthorizedKeys(p.o.Root, p.defaultUserOf().Name, keys); err != nil {
			errs = append(errs, fmt.Errorf("ssh_authorized_keys: %w", err))
		}
	}
	if s := p.cfg.SSHPwauth; s != nil && s.Value != "unchanged" {
		did = true
		v, ok := s.Bool()
		if !ok {
			errs = append(errs, fmt.Errorf("ssh_pwauth: %q: want true, false or unchanged", s.Value))
		} else {
			word := map[bool]string{true: "yes", false: "no"}[v]
			conf := "# Written by bulkhead-provision (ssh_pwauth).\nPasswordAuthentication " + word + "\nKbdInteractiveAuthentication " + word + "\n"
			if err := fsroot.WriteFile(p.o.Root.Join("/etc/ssh/sshd_config.d/50-bulkhead-provision.conf"), []byte(conf), 0o644); err != nil {
				errs = append(errs, fmt.Errorf("ssh_pwauth: %w", err))
			}
		}
	}
	if !did {
		return errNothing
	}
	return errors.Join(errs...)
}

// hashedRE is cloud-init's test for a password that is already a crypt(3)
// hash (set_passwords: MD5, Blowfish, SHA-256, SHA-512), which chpasswd
// must take with --encrypted.
var hashedRE = regexp.MustCompile(`^\$(1|2a|2y|5|6)(\$.+){2}$`)

// setPasswords is cloud-init's set_passwords: chpasswd.list (lines of
// name:password), chpasswd.users, or the top-level password for the
// default user. R or RANDOM asks for a generated password, printed to the
// console; expire (default true) makes every listed user change theirs.
func (p *provisioner) setPasswords(ctx context.Context) error {
	c := p.cfg.Chpasswd
	if c == nil && p.cfg.Password == "" {
		return errNothing
	}
	if c == nil {
		c = &cloudconfig.Chpasswd{}
	}
	type entry struct{ name, pass, typ string }
	var entries []entry
	var errs []error
	classify := func(pass string) string {
		switch {
		case pass == "R" || pass == "RANDOM":
			return "RANDOM"
		case hashedRE.MatchString(pass):
			return "hash"
		}
		return "text"
	}
	for i, l := range c.List {
		name, pass, ok := strings.Cut(l, ":")
		if !ok || name == "" {
			errs = append(errs, fmt.Errorf("chpasswd.list[%d]: want name:password", i))
			continue
		}
		entries = append(entries, entry{name, pass, classify(pass)})
	}
	for i, u := range c.Users {
		typ := u.Type
		if typ == "" {
			typ = "text"
		}
		if u.Name == "" || (typ != "text" && typ != "hash" && typ != "RANDOM") {
			errs = append(errs, fmt.Errorf("chpasswd.users[%d]: want a name and type text, hash or RANDOM", i))
			continue
		}
		if typ == "text" && (u.Password == "R" || u.Password == "RANDOM") {
			typ = "RANDOM"
		}
		entries = append(entries, entry{u.Name, u.Password, typ})
	}
	if len(entries) == 0 && p.cfg.Password != "" {
		if _, hasDefault := p.users(); !hasDefault {
			errs = append(errs, fmt.Errorf("password: no default user to set it for: add \"default\" to users or use chpasswd"))
		} else {
			entries = append(entries, entry{p.defaultUserOf().Name, p.cfg.Password, classify(p.cfg.Password)})
		}
	}
	var plain, hashed, names, random []string
	for _, e := range entries {
		switch e.typ {
		case "RANDOM":
			pw, err := randomPassword()
			if err != nil {
				return err
			}
			random = append(random, e.name+":"+pw)
			plain = append(plain, e.name+":"+pw)
		case "hash":
			hashed = append(hashed, e.name+":"+e.pass)
		default:
			plain = append(plain, e.name+":"+e.pass)
		}
		names = append(names, e.name)
	}
	if err := accounts.SetPasswords(ctx, p.o.Runner, plain, false); err != nil {
		errs = append(errs, fmt.Errorf("chpasswd: %w", err))
	} else if len(random) > 0 {
		// cloud-init prints generated passwords to the console, in these
		// words: the one place the owner of a new VM can read them.
		fmt.Fprintf(p.o.Console, "Set the following 'random' passwords\n%s\n", strings.Join(random, "\n"))
	}
	if err := accounts.SetPasswords(ctx, p.o.Runner, hashed, true); err != nil {
		errs = append(errs, fmt.Errorf("chpasswd: %w", err))
	}
	if c.Expire == nil || *c.Expire {
		for _, n := range names {
			if _, err := p.o.Runner.Run(ctx, run.Cmd{Name: "passwd", Args: []string{"--expire", n}}); err != nil {
				errs = append(errs, fmt.Errorf("chpasswd.expire: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

func randomPassword() (string, error) {
	const chars = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 20)
	for i := range b {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(chars))))
		if err != nil {
			return "", err
		}
		b[i] = chars[n.Int64()]
	}
	return string(b), nil
}

func (p *provisioner) timezone(ctx context.Context) error {
	tz := p.cfg.Timezone
	if tz == "" {
		return errNothing
	}
	if strings.Contains(tz, "..") || strings.HasPrefix(tz, "/") {
		return fmt.Errorf("timezone: %q is not a zone name", tz)
	}
	zone := "/usr/share/zoneinfo/" + tz
	if st, err := os.Stat(p.o.Root.Join(zone)); err != nil || st.IsDir() {
		return fmt.Errorf("timezone: unknown zone %q (no %s)", tz, zone)
	}
	if err := symlinkAtomic(zone, p.o.Root.Join("/etc/localtime")); err != nil {
		return fmt.Errorf("timezone: %w", err)
	}
	if err := fsroot.WriteFile(p.o.Root.Join("/etc/timezone"), []byte(tz+"\n"), 0o644); err != nil {
		return fmt.Errorf("timezone: %w", err)
	}
	return nil
}

// symlinkAtomic replaces path by a symlink to target in one rename.
func symlinkAtomic(target, path string) error {
	tmp := path + ".tmp-bulkhead"
	_ = os.Remove(tmp)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// networkConfig renders network-config (or, for older NoCloud seeds,
// meta-data's network-interfaces) into systemd-networkd files and applies
// them (package networkd). Per instance: a new instance renders
// again and loses the files of the previous one, even when it has no
// network-config (then the image's DHCP default applies again). A bad
// document changes nothing: every file is rendered before any is written.
func (p *provisioner) networkConfig(ctx context.Context) error {
	var files []networkd.File
	given := p.data.NetworkConfig != nil || p.data.MetaData.NetworkInterfaces != ""
	if given {
		var nc cloudconfig.NetworkConfig
		var err error
		if p.data.NetworkConfig != nil {
			nc, err = cloudconfig.ParseNetworkConfig(p.data.NetworkConfig)
		} else {
			nc, err = cloudconfig.ParseENI(p.data.MetaData.NetworkInterfaces)
		}
		if err != nil {
			return err
		}
		files = networkd.Render(nc, p.data.MetaData.InstanceID)
		p.o.Log.Info("network-config parsed", "version", nc.Version, "interfaces", nc.Interfaces, "disabled", nc.Disabled)
	}
	res, err := networkd.Applier{Root: p.o.Root, Runner: p.o.Runner, Log: p.o.Log, Offline: p.o.Offline}.Apply(ctx, files)
	if err != nil {
		return fmt.Errorf("network-config: %w", err)
	}
	if !given && !res.Changed() {
		return errNothing
	}
	p.o.Log.Info("network-config applied", "written", res.Written, "removed", res.Removed, "links", res.Links, "networkd", res.Networkd)
	// One console line says what changed and how networkd took it: the
	// journal shows only warnings, and this is what explains an address.
	var what []string
	if len(res.Written) > 0 {
		what = append(what, "wrote "+strings.Join(res.Written, ", "))
	}
	if len(res.Removed) > 0 {
		what = append(what, "removed "+strings.Join(res.Removed, ", "))
	}
	switch res.Networkd {
	case networkd.Reloaded:
		what = append(what, "systemd-networkd reloaded")
		if len(res.Links) > 0 {
			what[len(what)-1] += " (reconfigured " + strings.Join(res.Links, ", ") + ")"
		}
	case networkd.Restarted:
		what = append(what, "systemd-networkd restarted to read them")
	case networkd.NotRunning:
		what = append(what, "systemd-networkd not running yet: it reads them when it starts")
	}
	if len(what) > 0 {
		fmt.Fprintf(p.o.Console, "bulkhead-provision: network-config: %s\n", strings.Join(what, "; "))
	}
	if len(res.LinkFiles) > 0 {
		fmt.Fprintf(p.o.Console, "bulkhead-provision: network-config: renames and wake-on-LAN take effect on the next boot (udev applies .link files when a device appears): %s\n", strings.Join(res.LinkFiles, ", "))
	}
	return nil
}

func (p *provisioner) applyIgnition(ctx context.Context) error {
	if p.ignition == nil {
		return errNothing
	}
	cfg, warnings, err := ignition.Parse(p.ignition)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		p.problem("ignition: " + w)
	}
	res, err := ignition.Applier{Root: p.o.Root, Runner: p.o.Runner, Log: p.o.Log, Offline: p.o.Offline}.Apply(ctx, cfg)
	for _, w := range res.Warnings {
		p.problem("ignition: " + w)
	}
	if err == nil {
		return nil
	}
	// One line per problem, each naming its JSON path.
	var errs []error
	for _, line := range strings.Split(err.Error(), "\n") {
		errs = append(errs, errors.New("ignition: "+line))
	}
	return errors.Join(errs...)
}

func (p *provisioner) coreosUnits(ctx context.Context) error {
	if p.cfg.CoreOS == nil || len(p.cfg.CoreOS.Units) == 0 {
		return errNothing
	}
	var us []units.Unit
	var errs []error
	for _, u := range p.cfg.CoreOS.Units {
		i := u.Index()
		unit := units.Unit{Name: u.Name, Enable: u.Enable, Mask: u.Mask, Command: u.Command, Runtime: u.Runtime}
		if u.Content != "" {
			unit.Contents = &u.Content
		}
		for _, d := range u.DropIns {
			unit.DropIns = append(unit.DropIns, units.DropIn{Name: d.Name, Contents: d.Content})
		}
		if probs := unit.Validate(); len(probs) > 0 {
			for _, pr := range probs {
				errs = append(errs, fmt.Errorf("coreos.units[%d].%s", i, pr))
			}
			continue
		}
		us = append(us, unit)
	}
	if err := units.Apply(ctx, p.o.Runner, p.o.Root, us); err != nil {
		errs = append(errs, fmt.Errorf("coreos.units: %w", err))
	}
	return errors.Join(errs...)
}

var containerName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// bulkhead writes our own section to the files other components read,
// after checking each part with the same strict code that reads the file
// later (the updater, storage-setup, hostd), so a typo is reported now,
// naming the key, and a part that does not pass is not written.
func (p *provisioner) bulkhead(ctx context.Context) error {
	b := p.cfg.Bulkhead
	if b == nil {
		return errNothing
	}
	var errs []error
	write := func(key, path string, v any, check func([]byte) error) {
		data, err := yaml.Marshal(v)
		if err == nil {
			err = check(data)
		}
		if err == nil {
			err = fsroot.WriteFile(p.o.Root.Join(path), data, 0o644)
		}
		if err != nil {
			msg := strings.ReplaceAll(err.Error(), ":\n", ": ")
			msg = strings.Join(strings.Fields(strings.ReplaceAll(msg, "\n", "; ")), " ")
			errs = append(errs, fmt.Errorf("%s: %s", key, msg))
		}
	}
	if b.Update != nil {
		write("bulkhead.update", reboot.ConfigPath, b.Update, func(data []byte) error {
			_, err := updater.ParseConfig(data)
			return err
		})
	}
	if b.Storage != nil {
		write("bulkhead.storage", storagesetup.CloudConfigFile, b.Storage, func(data []byte) error {
			_, err := storagesetup.ParseCloudConfig(data)
			return err
		})
	}
	for i, c := range b.Containers {
		key := fmt.Sprintf("bulkhead.containers[%d]", i)
		name, _ := c["name"].(string)
		switch {
		case name == "":
			errs = append(errs, fmt.Errorf("%s.name: required", key))
		case !containerName.MatchString(name):
			errs = append(errs, fmt.Errorf("%s.name: %q: want letters, digits, _ . - only", key, name))
		default:
			write(key, engine.WorkloadDir+"/"+name+".yaml", c, func(data []byte) error {
				_, err := engine.ParseWorkload(data, name+".yaml")
				return err
			})
		}
	}
	return errors.Join(errs...)
}

func (p *provisioner) finalMessage(ctx context.Context) error {
	msg := p.cfg.FinalMessage
	if msg == "" {
		msg = "Bulkhead provisioning finished at $TIMESTAMP, up $UPTIME seconds, datasource $DATASOURCE, instance $INSTANCE_ID"
	}
	uptime := "?"
	if f := strings.Fields(readFile(p.o.Root.Join("/proc/uptime"))); len(f) > 0 {
		uptime = f[0]
	}
	r := strings.NewReplacer(
		"$UPTIME", uptime, "${UPTIME}", uptime,
		"$TIMESTAMP", p.o.Now().UTC().Format(time.RFC3339), "${TIMESTAMP}", p.o.Now().UTC().Format(time.RFC3339),
		"$INSTANCE_ID", p.data.MetaData.InstanceID, "${INSTANCE_ID}", p.data.MetaData.InstanceID,
		"$DATASOURCE", p.data.Source, "${DATASOURCE}", p.data.Source,
	)
	fmt.Fprintln(p.o.Console, r.Replace(strings.TrimRight(msg, "\n")))
	return nil
}

func readFile(path string) string {
	data, _ := os.ReadFile(path)
	return string(data)
}

// powerState schedules a reboot, power-off or halt with shutdown(8), the
// last module, so everything before it is on disk.
func (p *provisioner) powerState(ctx context.Context) error {
	ps := p.cfg.PowerState
	if ps == nil || p.o.Offline {
		return errNothing
	}
	flag := map[string]string{"poweroff": "-P", "reboot": "-r", "halt": "-H"}[ps.Mode]
	if flag == "" {
		return fmt.Errorf("power_state.mode: %q: want poweroff, reboot or halt", ps.Mode)
	}
	delay := "now"
	if ps.Delay != nil && ps.Delay.Value != "now" {
		d := strings.TrimPrefix(ps.Delay.Value, "+")
		if n, err := strconv.Atoi(d); err != nil || n < 0 {
			return fmt.Errorf("power_state.delay: %q: want now, +MINUTES or MINUTES", ps.Delay.Value)
		}
		delay = "+" + d
	}
	if c := ps.Condition; c != nil {
		if v, ok := c.Bool(); ok {
			if !v {
				return nil
			}
		} else if _, err := p.o.Runner.Run(ctx, run.Cmd{Name: "/bin/sh", Args: []string{"-c", c.Value}}); err != nil {
			p.o.Log.Info("power_state condition false; not changing power state", "condition", c.Value)
			return nil
		}
	}
	args := []string{flag, delay}
	if ps.Message != "" {
		args = append(args, ps.Message)
	}
	// Provision runs it once the report and the state are saved.
	p.power = func(ctx context.Context) error {
		if _, err := p.o.Runner.Run(ctx, run.Cmd{Name: "shutdown", Args: args}); err != nil {
			return fmt.Errorf("power_state: %w", err)
		}
		return nil
	}
	return nil
}
