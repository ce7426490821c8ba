set -e
r="$1"
grep -q '^systemd-journal:' "$r/etc/group" || { echo 'systemd-journal:x:999:' >> "$r/etc/group"; echo 'systemd-journal:!::' >> "$r/etc/gshadow"; }
grep -q '^systemd-network:' "$r/etc/group" || { echo 'systemd-network:x:998:' >> "$r/etc/group"; echo 'systemd-network:!::' >> "$r/etc/gshadow"; }
grep -q '^systemd-network:' "$r/etc/passwd" || { echo 'systemd-network:x:998:998::/nonexistent:/usr/sbin/nologin' >> "$r/etc/passwd"; echo 'systemd-network:!*:1::::::' >> "$r/etc/shadow"; }
grep -q '^systemd-resolve:' "$r/etc/group" || { echo 'systemd-resolve:x:997:' >> "$r/etc/group"; echo 'systemd-resolve:!::' >> "$r/etc/gshadow"; }
grep -q '^systemd-resolve:' "$r/etc/passwd" || { echo 'systemd-resolve:x:997:997::/nonexistent:/usr/sbin/nologin' >> "$r/etc/passwd"; echo 'systemd-resolve:!*:1::::::' >> "$r/etc/shadow"; }
grep -q '^messagebus:' "$r/etc/group" || { echo 'messagebus:x:106:' >> "$r/etc/group"; echo 'messagebus:!::' >> "$r/etc/gshadow"; }
grep -q '^messagebus:' "$r/etc/passwd" || { echo 'messagebus:x:100:106::/nonexistent:/usr/sbin/nologin' >> "$r/etc/passwd"; echo 'messagebus:!*:1::::::' >> "$r/etc/shadow"; }
grep -q '^sshd:' "$r/etc/group" || { echo 'sshd:x:65534:' >> "$r/etc/group"; echo 'sshd:!::' >> "$r/etc/gshadow"; }
grep -q '^sshd:' "$r/etc/passwd" || { echo 'sshd:x:101:65534::/run/sshd:/usr/sbin/nologin' >> "$r/etc/passwd"; echo 'sshd:!*:1::::::' >> "$r/etc/shadow"; }
grep -q '^_ssh:' "$r/etc/group" || { echo '_ssh:x:101:' >> "$r/etc/group"; echo '_ssh:!::' >> "$r/etc/gshadow"; }
grep -q '^input:' "$r/etc/group" || { echo 'input:x:102:' >> "$r/etc/group"; echo 'input:!::' >> "$r/etc/gshadow"; }
grep -q '^sgx:' "$r/etc/group" || { echo 'sgx:x:103:' >> "$r/etc/group"; echo 'sgx:!::' >> "$r/etc/gshadow"; }
grep -q '^kvm:' "$r/etc/group" || { echo 'kvm:x:104:' >> "$r/etc/group"; echo 'kvm:!::' >> "$r/etc/gshadow"; }
grep -q '^render:' "$r/etc/group" || { echo 'render:x:105:' >> "$r/etc/group"; echo 'render:!::' >> "$r/etc/gshadow"; }
