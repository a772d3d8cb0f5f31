#!/usr/bin/env bash
# Creates the no-ROS-install environment: .venv with ROS 2 Kilted wheels, torch (CPU), the project's
# dependencies, jepa_msgs built into the venv and the project installed. Idempotent: each step is skipped when
# its stamp is newer than its inputs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
py=${PYTHON:-python3.11}
command -v "$py" >/dev/null || py=python3
stamps="$venv/.stamps"

fresh() {  # fresh STAMP INPUT... : true when STAMP exists and is newer than every INPUT
  local stamp="$stamps/$1"; shift
  [ -e "$stamp" ] || return 1
  local f
  for f in "$@"; do [ "$f" -nt "$stamp" ] && return 1; done
  return 0
}

# 1. Debian packages: offscreen OpenGL for MuJoCo, a C/C++ toolchain for the interface build.
need_apt=()
[ -e /usr/lib/x86_64-linux-gnu/libOSMesa.so.8 ] || ls /usr/lib/*/libOSMesa.so* >/dev/null 2>&1 || need_apt+=(libosmesa6)
command -v g++ >/dev/null || need_apt+=(g++)
command -v make >/dev/null || need_apt+=(make)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "[setup] apt-get install ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# 2. The virtual environment and pinned Python dependencies.
if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating $venv with $($py --version)"
  "$py" -m venv "$venv"
fi
mkdir -p "$stamps"
if ! fresh requirements "$root/requirements.txt"; then
  echo "[setup] installing requirements.txt (a few minutes the first time)"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$root/requirements.txt"
  touch "$stamps/requirements"
fi

# 3. The wheels' CMake exports name the wheel build machine's Python and numpy include paths; point them here.
if ! fresh cmake-paths "$stamps/requirements"; then
  inc=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  npinc=$("$venv/bin/python" -c 'import numpy; print(numpy.get_include())')
  { grep -rlZ --include='*.cmake' '/opt/python/cp311-cp311' "$venv/share" 2>/dev/null || true; } | xargs -0 -r sed -i \
    -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$npinc#g" \
    -e "s#/opt/python/cp311-cp311/include/python3.11#$inc#g"
  touch "$stamps/cmake-paths"
fi

# 4. jepa_msgs: rosidl generation with CMake, installed into the venv (typesupport libraries in .venv/lib are
#    found through the wheels' bootstrapper; the Python module lands in site-packages).
msg_inputs=("$root"/jepa_msgs/CMakeLists.txt "$root"/jepa_msgs/package.xml "$root"/jepa_msgs/msg/* "$root"/jepa_msgs/srv/* "$root"/jepa_msgs/action/*)
if ! fresh jepa_msgs "${msg_inputs[@]}" "$stamps/cmake-paths"; then
  echo "[setup] building jepa_msgs"
  build="$root/build/jepa_msgs"
  rm -rf "$build"; mkdir -p "$build"
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  (
    export PATH="$venv/bin:$PATH" AMENT_PREFIX_PATH="$venv" CMAKE_PREFIX_PATH="$venv"
    cd "$build"
    "$venv/bin/cmake" "$root/jepa_msgs" -DCMAKE_INSTALL_PREFIX="$venv" -DCMAKE_BUILD_TYPE=Release \
      -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$venv/bin/python" -DPYTHON_INSTALL_DIR="${site#$venv/}" \
      -DCMAKE_INSTALL_LIBDIR=lib > cmake.log 2>&1 || { cat cmake.log; exit 1; }
    make -j"$(nproc)" > make.log 2>&1 || { tail -50 make.log; exit 1; }
    make install > install.log 2>&1 || { tail -50 install.log; exit 1; }
  )
  touch "$stamps/jepa_msgs"
fi

# 5. The project itself (editable: console scripts jepa, perception_node, planner_node, ... on the venv's PATH).
if ! fresh project "$root/setup.py" "$root/setup.cfg" "$stamps/requirements"; then
  echo "[setup] installing jepa_ros (editable)"
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps --no-build-isolation \
    --config-settings editable_mode=compat -e "$root"
  touch "$stamps/project"
fi
echo "[setup] ready: $venv"
