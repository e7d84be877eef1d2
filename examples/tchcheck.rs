fn main() {
    tch::set_num_threads(1);
    let t = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
    println!("{}", (t * 2).sum(tch::Kind::Float));
}
