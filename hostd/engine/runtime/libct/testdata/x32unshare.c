/* x32unshare: an attack on the seccomp filter through a foreign system
 * call ABI. A 64-bit program asks for unshare(CLONE_NEWUSER) with the x32
 * bit set in the call number; the filter must refuse it (EPERM, or kill
 * the program as a foreign architecture) rather than let the kernel see
 * it. Prints what came back: "allowed", "EPERM", "ENOSYS" or "errno N". */
#include <stdio.h>

int main(void) {
	long ret;
	long nr = 0x40000000L | 272; /* x32 unshare: x86-64's number, x32 bit */
	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(0x10000000L) : "rcx", "r11", "memory");
	if (ret == 0) {
		puts("allowed");
	} else if (ret == -1) {
		puts("EPERM");
	} else if (ret == -38) {
		puts("ENOSYS");
	} else {
		printf("errno %ld\n", -ret);
	}
	return ret == 0 ? 0 : 1;
}
