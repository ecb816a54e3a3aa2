/*
 * bcryptprimitives.dll for Wine 8 (Debian 12), which lacks it; every Windows since 10 has it.
 * Rust's std draws its random numbers (HashMap seeds) from ProcessPrng there. This one forwards
 * to BCryptGenRandom with the system RNG. Used only under Wine by scripts/windows-check.
 */
#include <windows.h>
#include <bcrypt.h>

#pragma comment(lib, "bcrypt.lib")

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (BCryptGenRandom(NULL, data, chunk, BCRYPT_USE_SYSTEM_PREFERRED_RNG) != 0) {
            return FALSE;
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}

BOOL WINAPI DllMainCRTStartup(HINSTANCE instance, DWORD reason, LPVOID reserved)
{
    (void)instance;
    (void)reason;
    (void)reserved;
    return TRUE;
}
