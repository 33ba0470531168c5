fn main() {
    let mut o = experiments::demo::DemoOptions::default();
    let args: Vec<String> = std::env::args().collect();
    if args.len() > 1 { o.images = args[1].parse().unwrap(); }
    if args.len() > 2 { o.epochs = args[2].parse().unwrap(); }
    if args.len() > 3 { o.lr = args[3].parse().unwrap(); }
    if args.len() > 4 { o.width = args[4].parse().unwrap(); }
    o.heldout = o.images / 4;
    let t = std::time::Instant::now();
    let r = experiments::demo::run_demo(&o, &candle_core::Device::Cpu, &mut experiments::events::NullObserver).unwrap();
    println!("{:.1}s {:?}\n epochs {:?}\n heldout {:?}", t.elapsed().as_secs_f64(), r.heldout_after, r.losses.epoch_losses, r.losses.heldout_losses);
    println!("train after {:?} before {:?}", r.train_after, r.heldout_before);
}
