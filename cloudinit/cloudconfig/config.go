package cloudconfig

// Config is a #cloud-config document: the keys Bulkhead applies. Each field
// is one module's input; a key that fails to decode is left zero and named
// in the problems, so the other modules still run.
type Config struct {
	Hostname         string `yaml:"hostname"`
	FQDN             string `yaml:"fqdn"`
	PreserveHostname bool   `yaml:"preserve_hostname"`
	PreferFQDN       bool   `yaml:"prefer_fqdn_over_hostname"`

	// Users nil means "users" was absent: the default user is created.
	Users  []User `yaml:"users"`
	Groups Groups `yaml:"groups"`
	// User is the top-level user key: a name, or a users[] mapping, that
	// replaces the default user's name and settings (cloud-init's
	// normalize_users_groups; Proxmox VE writes `user: NAME`).
	User *User `yaml:"user"`
	// Password is the top-level password key: the default user's password
	// when chpasswd lists none (cloud-init's set_passwords; its own NoCloud
	// example and Proxmox VE use it).
	Password          string      `yaml:"password"`
	SSHAuthorizedKeys StringList  `yaml:"ssh_authorized_keys"`
	SSHPwauth         *Scalar     `yaml:"ssh_pwauth"`
	SSHDeleteKeys     *bool       `yaml:"ssh_deletekeys"`
	SSHGenKeyTypes    StringList  `yaml:"ssh_genkeytypes"`
	Chpasswd          *Chpasswd   `yaml:"chpasswd"`
	WriteFiles        []WriteFile `yaml:"write_files"`
	// ManageEtcHosts is true/template (rewrite /etc/hosts every boot),
	// localhost (only the 127.0.1.1 line) or false.
	ManageEtcHosts *Scalar `yaml:"manage_etc_hosts"`

	Bootcmd []Command `yaml:"bootcmd"`
	Runcmd  []Command `yaml:"runcmd"`

	Mounts             []MountEntry `yaml:"mounts"`
	MountDefaultFields MountEntry   `yaml:"mount_default_fields"`
	Growpart           *Growpart    `yaml:"growpart"`
	ResizeRootfs       *Scalar      `yaml:"resize_rootfs"`
	Timezone           string       `yaml:"timezone"`
	PowerState         *PowerState  `yaml:"power_state"`
	FinalMessage       string       `yaml:"final_message"`

	CoreOS   *CoreOS   `yaml:"coreos"`
	Bulkhead *Bulkhead `yaml:"bulkhead"`
}

// refused are cloud-init keys that make no sense on an immutable host; they
// get a warning that names them instead of "unknown key", and every other
// key is still applied (Proxmox VE writes package_upgrade: true into
// every seed it makes).
var refused = map[string]string{
	"packages":                   "ignored: Bulkhead is immutable (no package manager); run software as containers (bulkhead.containers)",
	"package_update":             "ignored: Bulkhead is immutable; updates come as whole /usr images (bulkhead.update)",
	"package_upgrade":            "ignored: Bulkhead is immutable; updates come as whole /usr images (bulkhead.update)",
	"package_reboot_if_required": "ignored: Bulkhead is immutable; updates come as whole /usr images (bulkhead.update)",
	"apt":                        "ignored: Bulkhead is immutable (no package manager)",
	"apt_update":                 "ignored: Bulkhead is immutable (no package manager)",
	"apt_upgrade":                "ignored: Bulkhead is immutable (no package manager)",
	"yum_repos":                  "ignored: Bulkhead is immutable (no package manager)",
	"snap":                       "ignored: Bulkhead is immutable (no package manager)",
}

// User is one entry of users: either the string "default" (or a bare
// name) or a mapping.
type User struct {
	Name              string     `yaml:"name"`
	Gecos             string     `yaml:"gecos"`
	Groups            StringList `yaml:"groups"`
	PrimaryGroup      string     `yaml:"primary_group"`
	Sudo              Sudo       `yaml:"sudo"`
	Shell             string     `yaml:"shell"`
	LockPasswd        *bool      `yaml:"lock_passwd"`
	Passwd            string     `yaml:"passwd"`
	HashedPasswd      string     `yaml:"hashed_passwd"`
	PlainTextPasswd   string     `yaml:"plain_text_passwd"`
	SSHAuthorizedKeys StringList `yaml:"ssh_authorized_keys"`
	// SSHAuthorizedKeysDash is the dash spelling cloud-init still accepts
	// and virt-install writes (--cloud-init root-ssh-key=).
	SSHAuthorizedKeysDash StringList `yaml:"ssh-authorized-keys"`
	// LockPasswdDash is lock-passwd, the old dash spelling.
	LockPasswdDash *bool   `yaml:"lock-passwd"`
	System         bool    `yaml:"system"`
	UID            *Scalar `yaml:"uid"`
	Homedir        string  `yaml:"homedir"`
	NoCreateHome   bool    `yaml:"no_create_home"`
	NoUserGroup    bool    `yaml:"no_user_group"`
	ExpireDate     string  `yaml:"expiredate"`

	// Default is set for the "default" entry: the distribution's user.
	Default bool `yaml:"-"`

	item
}

// Chpasswd sets passwords of existing users.
type Chpasswd struct {
	// List is the old form: a multi-line string of name:password lines
	// (what virt-install writes) or a list of them.
	List  Lines           `yaml:"list"`
	Users []ChpasswdEntry `yaml:"users"`
	// Expire nil means true, as in cloud-init: the user must change it.
	Expire *bool `yaml:"expire"`
}

// ChpasswdEntry is one user of chpasswd.users.
type ChpasswdEntry struct {
	Name     string `yaml:"name"`
	Password string `yaml:"password"`
	Type     string `yaml:"type"` // text (default), hash, RANDOM
}

// WriteFile is one entry of write_files.
type WriteFile struct {
	Path        string `yaml:"path"`
	Content     string `yaml:"content"`
	Encoding    string `yaml:"encoding"`
	Owner       string `yaml:"owner"`
	Permissions *Perm  `yaml:"permissions"`
	Append      bool   `yaml:"append"`
	Defer       bool   `yaml:"defer"`

	item
}

// Growpart is the growpart module's input.
type Growpart struct {
	Mode                   *Scalar    `yaml:"mode"` // auto, growpart, off/false
	Devices                StringList `yaml:"devices"`
	IgnoreGrowrootDisabled bool       `yaml:"ignore_growroot_disabled"`
}

// PowerState is power_state: what to do once provisioning is over.
type PowerState struct {
	Mode      string  `yaml:"mode"` // poweroff, reboot, halt
	Delay     *Scalar `yaml:"delay"`
	Message   string  `yaml:"message"`
	Timeout   *Scalar `yaml:"timeout"`
	Condition *Scalar `yaml:"condition"`
}

// CoreOS is the coreos-cloudinit section; only units is applied.
type CoreOS struct {
	Units []CoreOSUnit `yaml:"units"`
}

// CoreOSUnit is one systemd unit as coreos-cloudinit took it.
type CoreOSUnit struct {
	Name    string       `yaml:"name"`
	Content string       `yaml:"content"`
	Enable  bool         `yaml:"enable"`
	Runtime bool         `yaml:"runtime"`
	Command string       `yaml:"command"`
	Mask    bool         `yaml:"mask"`
	DropIns []CoreOSDrop `yaml:"drop_ins"`

	item
}

// CoreOSDrop is one drop-in of a coreos unit.
type CoreOSDrop struct {
	Name    string `yaml:"name"`
	Content string `yaml:"content"`
}

// Bulkhead is our own section; other components read the files it becomes
// (see the briefing contract): update.yaml, storage.yaml, containers/*.yaml.
type Bulkhead struct {
	Update     map[string]any   `yaml:"update"`
	Storage    map[string]any   `yaml:"storage"`
	Containers []map[string]any `yaml:"containers"`
}

// AuthorizedKeys is the user's keys under both spellings.
func (u User) AuthorizedKeys() []string {
	return append(append([]string{}, u.SSHAuthorizedKeys...), u.SSHAuthorizedKeysDash...)
}

// Locked says whether the account's password is locked: lock_passwd (or
// lock-passwd) defaults to true, as in cloud-init.
func (u User) Locked() bool {
	switch {
	case u.LockPasswd != nil:
		return *u.LockPasswd
	case u.LockPasswdDash != nil:
		return *u.LockPasswdDash
	}
	return true
}

// item remembers a list entry's position in the input, so errors name
// users[3] even when an earlier entry was dropped for a decoding problem.
type item struct{ index int }

// Index is the entry's position in its list in the input.
func (i item) Index() int { return i.index }

func (i *item) setIndex(n int) { i.index = n }

// SetIndexFrom copies another entry's input position (the "default" entry
// replaced by the default user keeps its place in error messages).
func (u *User) SetIndexFrom(o User) { u.index = o.index }
