// No console window on Windows in release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() -> anyhow::Result<()> {
    // Before any thread starts (it sets environment variables the compute libraries read).
    experiments::model::device::set_cpu_thread_defaults();
    cliplab_app::run()
}
