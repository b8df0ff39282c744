#pragma once
// RUNSCOPE_SANITIZED is 1 in builds with AddressSanitizer, ThreadSanitizer or MemorySanitizer
// (GCC's macros, clang's __has_feature), else 0. Such builds keep what their runtimes need:
// exit() rather than _exit() (the leak check, TSan's exit code), a child that is a copy rather
// than one sharing the parent's memory (the runtime would be shared too); tests expect the same.

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RUNSCOPE_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define RUNSCOPE_SANITIZED 1
#endif
#endif
#ifndef RUNSCOPE_SANITIZED
#define RUNSCOPE_SANITIZED 0
#endif
