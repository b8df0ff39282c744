# Sourced by scripts/test.sh, scripts/test-debian13.sh (in the trixie root) and
# tests/e2e/run-e2e.sh. A test tree compiled exactly as the .deb is compiled lets ccache serve the
# e2e's package builds instead of compiling the programs a second time (a cold package build cost
# about 5 minutes of both cores), and the plain layers then test the flags users get (-O2,
# _FORTIFY_SOURCE, the stack protector, no NDEBUG).
#
#   debian_cmake_args         fills DEBIAN_CMAKE_ARGS: the build type and flags debhelper's cmake
#                             build configures with (dpkg-buildflags, CPPFLAGS appended)
#   debian_ccache_export DIR  how ccache must hash so the two builds meet (also for the e2e)

debian_cmake_args() {
  # debian/rules' DEB_BUILD_MAINT_OPTIONS (hardening=+all), so the flags cannot drift from it.
  local options flags cppflags ldflags
  options=$(sed -n 's/^export DEB_BUILD_MAINT_OPTIONS *= *//p' debian/rules)
  flags=$(DEB_BUILD_MAINT_OPTIONS="$options" dpkg-buildflags --get CXXFLAGS)
  cppflags=$(DEB_BUILD_MAINT_OPTIONS="$options" dpkg-buildflags --get CPPFLAGS)
  ldflags=$(DEB_BUILD_MAINT_OPTIONS="$options" dpkg-buildflags --get LDFLAGS)
  # debhelper appends CPPFLAGS to CXXFLAGS (CMake does not read them), in this order.
  DEBIAN_CMAKE_ARGS=(-DCMAKE_BUILD_TYPE=None "-DCMAKE_CXX_FLAGS=$flags $cppflags"
                     "-DCMAKE_EXE_LINKER_FLAGS=$ldflags")
}

# The package is built in another folder (a temp copy of the tree) than the test tree:
# - CCACHE_BASEDIR makes the tree's absolute paths relative (the build folders are both direct
#   children of their tree: build/ and obj-x86_64-linux-gnu/), so the command lines match;
# - dpkg's -ffile-prefix-map=TREE=. names each tree: left out of the hash, since both map their
#   own tree to "." and the objects are the same;
# - CCACHE_NOHASHDIR: the build folder's name is in the debug info only (DW_AT_comp_dir), which
#   for a cached object may name the other folder ("./build" in the package's -dbgsym files).
debian_ccache_export() {
  export CCACHE_BASEDIR=$1
  export CCACHE_NOHASHDIR=1
  export CCACHE_IGNOREOPTIONS="-ffile-prefix-map=*"
}
