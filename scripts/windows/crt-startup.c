/*
 * A stand-in for the static half of Microsoft's C runtime (msvcrt.lib's start-up objects), which
 * only Visual Studio ships: just enough for scripts/windows-check to link php_qrpush.dll and the
 * core's test .exe on Linux with rust-lld. The dynamic half is real: vcruntime140.dll and the
 * Universal CRT (api-ms-win-crt-*), through Wine's and MinGW-w64's import libraries.
 *
 * What it provides, and why each is needed:
 *   - _DllMainCRTStartup / mainCRTStartup: run the .CRT$XI* (C) and .CRT$XC* (C++) initializer
 *     tables before anything else. Rust crates register through .CRT$XCU (the `inventory` crate
 *     that ext-php-rs uses to collect classes), so skipping them would lose every class.
 *   - _tls_used / _tls_index: the TLS directory; Rust's thread-local destructors are TLS callbacks
 *     in .CRT$XL*, which the loader only calls when the image has this directory.
 *   - __security_cookie / __security_check_cookie: clang-cl's /GS stack protector (wrapper.c).
 *   - _fltused, __chkstk, type_info's vftable, _setjmp: referenced by compiler-generated code.
 *
 * Never shipped: the release DLL is linked on Windows against the real CRT.
 *
 * Built three times into msvcrt.lib (scripts/windows-check): the common part, and each entry point
 * alone (-DENTRY_DLL, -DENTRY_EXE), so that linking a DLL never pulls in an undefined main().
 */
#include <windows.h>
#include <stdint.h>

#pragma comment(lib, "vcruntime.lib")
#pragma comment(lib, "ucrt.lib")
#pragma comment(lib, "ucrt-extra.lib")
#pragma comment(lib, "kernel32.lib")

BOOL qrpush_crt_initialize(void);

#if defined(ENTRY_DLL)
BOOL WINAPI _DllMainCRTStartup(HINSTANCE instance, DWORD reason, LPVOID reserved)
{
    (void)instance;
    (void)reserved;
    return reason == DLL_PROCESS_ATTACH ? qrpush_crt_initialize() : TRUE;
}
#elif defined(ENTRY_EXE)
int main(int argc, char **argv);

/* Rust's std reads the command line itself (GetCommandLineW): argc/argv are not used. */
void mainCRTStartup(void)
{
    ExitProcess(qrpush_crt_initialize() ? (UINT)main(0, 0) : 255u);
}
#else
typedef int(__cdecl *c_initializer)(void);
typedef void(__cdecl *cxx_initializer)(void);

/* The sections sort by name ($ suffix), so A and Z bracket what the compilers put in between. */
#pragma section(".CRT$XIA", long, read)
#pragma section(".CRT$XIZ", long, read)
#pragma section(".CRT$XCA", long, read)
#pragma section(".CRT$XCZ", long, read)
#pragma section(".CRT$XLA", long, read)
#pragma section(".CRT$XLZ", long, read)
__attribute__((used)) __declspec(allocate(".CRT$XIA")) static c_initializer xi_a = 0;
__attribute__((used)) __declspec(allocate(".CRT$XIZ")) static c_initializer xi_z = 0;
__attribute__((used)) __declspec(allocate(".CRT$XCA")) static cxx_initializer xc_a = 0;
__attribute__((used)) __declspec(allocate(".CRT$XCZ")) static cxx_initializer xc_z = 0;
__attribute__((used)) __declspec(allocate(".CRT$XLA")) static PIMAGE_TLS_CALLBACK xl_a = 0;
__attribute__((used)) __declspec(allocate(".CRT$XLZ")) static PIMAGE_TLS_CALLBACK xl_z = 0;

/* The TLS template lies between .tls and .tls$ZZZ; the linker finds the directory by name. */
#pragma section(".tls", long, read, write)
#pragma section(".tls$ZZZ", long, read, write)
__attribute__((used)) __declspec(allocate(".tls")) static char tls_start = 0;
__attribute__((used)) __declspec(allocate(".tls$ZZZ")) static char tls_end = 0;
ULONG _tls_index = 0;
const IMAGE_TLS_DIRECTORY64 _tls_used = {
    (ULONGLONG)&tls_start, (ULONGLONG)&tls_end, (ULONGLONG)&_tls_index, (ULONGLONG)(&xl_a + 1), 0, 0,
};

int _fltused = 0x9875;

uintptr_t __security_cookie = 0x2B992DDFA232;

void __security_check_cookie(uintptr_t cookie)
{
    if (cookie != __security_cookie) {
        __fastfail(2 /* FAST_FAIL_STACK_COOKIE_CHECK_FAILURE */);
    }
}

/* type_info's vftable: the C++ exception descriptors of Rust panics point at it; never called. */
const void *qrpush_type_info_vftable[2] = {0, 0};
#pragma comment(linker, "/alternatename:??_7type_info@@6B@=qrpush_type_info_vftable")
/* clang-cl calls setjmp _setjmp, MSVC's cl __intrinsic_setjmp (vcruntime140 exports that one). */
#pragma comment(linker, "/alternatename:_setjmp=__intrinsic_setjmp")

/*
 * __chkstk: touches each page of a large stack frame, top down, before the caller moves rsp
 * (Windows grows the stack one guard page at a time). Size in rax; rax and rcx are preserved.
 */
__asm__(
    ".globl __chkstk\n"
    "__chkstk:\n"
    "    push rcx\n"
    "    push rax\n"
    "    lea rcx, [rsp + 24]\n"
    "chkstk_loop:\n"
    "    cmp rax, 0x1000\n"
    "    jb chkstk_last\n"
    "    sub rcx, 0x1000\n"
    "    or qword ptr [rcx], 0\n"
    "    sub rax, 0x1000\n"
    "    jmp chkstk_loop\n"
    "chkstk_last:\n"
    "    sub rcx, rax\n"
    "    or qword ptr [rcx], 0\n"
    "    pop rax\n"
    "    pop rcx\n"
    "    ret\n");

BOOL qrpush_crt_initialize(void)
{
    for (c_initializer *f = &xi_a + 1; f < &xi_z; f++) {
        if (*f && (*f)() != 0) {
            return FALSE;
        }
    }
    for (cxx_initializer *f = &xc_a + 1; f < &xc_z; f++) {
        if (*f) {
            (*f)();
        }
    }
    return TRUE;
}
#endif
