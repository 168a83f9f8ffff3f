// facemotion studio page: uploads and recording, job progress, the heads (three.js), downloads.
// Each sample's GLB (morph targets + a weights/head animation) plays through an AnimationMixer
// whose time is the audio element's currentTime, so scrubbing, looping and playback stay in sync.
// `window.studio` exposes the state for tests (morph influences, playback time).
import * as THREE from 'three';
import { GLTFLoader } from 'three/addons/loaders/GLTFLoader.js';
import { OrbitControls } from 'three/addons/controls/OrbitControls.js';

const $ = (id) => document.getElementById(id);
const audio = $('audio');
const state = { config: null, speech: null, style: null, avatar: null, job: null, views: [], recorder: null };

async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({ error: `${response.status} ${response.statusText}` }));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function upload(kind, blob, name) {
  return api(`/api/uploads/${kind}?name=${encodeURIComponent(name)}`, {
    method: 'POST', body: blob, headers: { 'Content-Type': blob.type || 'application/octet-stream' },
  });
}

function showError(message) { $('error').textContent = message || ''; }

async function takeSpeech(blob, name) {
  showError('');
  $('speech-info').textContent = `checking ${name}…`;
  $('generate').disabled = true;
  try {
    state.speech = await upload('speech', blob, name);
    $('speech-info').textContent = `${state.speech.name}: ${state.speech.seconds.toFixed(2)} s`;
    $('generate').disabled = false;
  } catch (err) {
    state.speech = null;
    $('speech-info').textContent = 'no speech yet';
    showError(err.message);
  }
}

async function takeOptional(kind, input, info) {
  showError('');
  state[kind] = null;
  info.textContent = '';
  const file = input.files[0];
  if (!file) return;
  try {
    state[kind] = await upload(kind, file, file.name);
    info.textContent = kind === 'avatar'
      ? `${file.name}: ${state.avatar.matched.length}/52 ARKit names matched`
        + (state.avatar.unmatched.length ? ` (unmatched: ${state.avatar.unmatched.join(', ')})` : '')
      : `${file.name}: ${state[kind].seconds.toFixed(2)} s`;
  } catch (err) {
    input.value = '';
    showError(err.message);
  }
}

async function toggleRecording() {
  const button = $('record');
  if (state.recorder) { state.recorder.stop(); return; }
  showError('');
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (err) {
    showError(`microphone: ${err.message}`);
    return;
  }
  const recorder = new MediaRecorder(stream);
  const chunks = [];
  const started = performance.now();
  const clock = setInterval(() => { $('record-time').textContent = `${((performance.now() - started) / 1000).toFixed(1)} s`; }, 100);
  recorder.ondataavailable = (e) => { if (e.data.size) chunks.push(e.data); };
  recorder.onstop = () => {
    clearInterval(clock);
    stream.getTracks().forEach((t) => t.stop());
    state.recorder = null;
    button.textContent = '● Record';
    button.classList.remove('recording');
    const blob = new Blob(chunks, { type: recorder.mimeType || 'audio/webm' });
    takeSpeech(blob, 'recording.webm');
  };
  state.recorder = recorder;
  recorder.start();
  button.textContent = '■ Stop';
  button.classList.add('recording');
}

function field(id) { const v = $(id).value.trim(); return v === '' ? null : Number(v); }

async function generate(event) {
  event.preventDefault();
  if (!state.speech) return;
  showError('');
  $('generate').disabled = true;
  try {
    let job = await api('/api/jobs', {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({
        speech: state.speech.id, model: $('model').value, seed: field('seed'), num_samples: field('samples') || 1,
        steps: field('steps'), style: state.style && state.style.id, avatar: state.avatar && state.avatar.id,
      }),
    });
    while (job.state === 'queued' || job.state === 'running') {
      showProgress(job);
      await new Promise((resolve) => setTimeout(resolve, 400));
      job = await api(`/api/jobs/${job.id}`);
    }
    showProgress(job);
    if (job.state === 'failed') throw new Error(job.error);
    state.job = job;
    await showJob(job);
  } catch (err) {
    showError(err.message);
  } finally {
    $('generate').disabled = !state.speech;
  }
}

function showProgress(job) {
  $('progress').value = job.progress;
  const where = job.state === 'queued' && job.position ? ` (${job.position} ahead)` : '';
  $('stage').textContent = `${job.stage}${where} — ${Math.round(job.progress * 100)} %`;
}

// ---------------------------------------------------------------- viewer
const canvas = $('canvas');
const renderer = new THREE.WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
renderer.setPixelRatio(Math.min(window.devicePixelRatio, 2));
const camera = new THREE.PerspectiveCamera(24, 1, 0.01, 20);
camera.position.set(0, 0, 1);
const controls = new OrbitControls(camera, canvas);
const loader = new GLTFLoader();

function makeScene() {
  const scene = new THREE.Scene();
  scene.add(new THREE.HemisphereLight(0xffffff, 0x404050, 2.0));
  const key = new THREE.DirectionalLight(0xffffff, 2.0);
  key.position.set(0.5, 0.6, 1.0);
  scene.add(key);
  return scene;
}

function morphMesh(root) {
  let best = null;
  root.traverse((o) => {
    if (o.morphTargetInfluences && (!best || o.morphTargetInfluences.length > best.morphTargetInfluences.length)) best = o;
  });
  return best;
}

async function loadView(url, seed) {
  const gltf = await loader.loadAsync(url);
  const scene = makeScene();
  scene.add(gltf.scene);
  const mixer = new THREE.AnimationMixer(gltf.scene);
  const clip = gltf.animations[0];
  if (clip) mixer.clipAction(clip).play();
  return { scene, root: gltf.scene, mixer, clip, mesh: morphMesh(gltf.scene), seed };
}

function frameCamera(root) {
  const box = new THREE.Box3().setFromObject(root);
  const center = box.getCenter(new THREE.Vector3());
  const size = box.getSize(new THREE.Vector3());
  center.y += size.y * 0.12;  // the face, above the middle of a head-and-shoulders box
  const distance = (Math.max(size.x, size.y) / 2) / Math.tan(THREE.MathUtils.degToRad(camera.fov / 2)) * 0.95;
  camera.position.set(center.x, center.y, center.z + size.z / 2 + distance);
  camera.near = distance / 50;
  camera.far = distance * 50;
  controls.target.copy(center);
  controls.update();
}

async function showJob(job) {
  audio.pause();
  state.views.forEach((v) => v.mixer.stopAllAction());
  state.views = [];
  audio.src = `/api/jobs/${job.id}/speech`;
  const base = `/api/jobs/${job.id}/samples`;
  state.views = await Promise.all(job.samples.map((s) =>
    loadView(`${base}/${s.index}/${s.avatar ? 'avatar' : 'glb'}`, s.seed)));
  if (state.views.length) frameCamera(state.views[0].root);
  $('placeholder').hidden = state.views.length > 0;
  if (!state.views.some((v) => v.clip)) $('placeholder').textContent = 'this model has no blendshapes to show; download the mp4';
  $('labels').replaceChildren(...job.samples.map((s) => {
    const label = document.createElement('div');
    label.textContent = `sample ${s.index + 1} · seed ${s.seed}`;
    return label;
  }));
  const { cols } = grid(state.views.length);
  $('labels').style.gridTemplateColumns = `repeat(${cols}, 1fr)`;
  showDownloads(job);
  $('play').disabled = false;
  $('scrub').disabled = false;
  await new Promise((resolve) => {
    if (audio.readyState >= 1) resolve();
    else audio.addEventListener('loadedmetadata', resolve, { once: true });
  });
  $('scrub').max = audio.duration.toFixed(2);
  audio.currentTime = 0;
}

function showDownloads(job) {
  const rows = job.samples.map((s) => {
    const row = document.createElement('tr');
    const name = document.createElement('th');
    name.textContent = `sample ${s.index + 1} (seed ${s.seed})`;
    row.append(name);
    for (const fmt of s.formats.concat(s.avatar ? ['avatar'] : [])) {
      const cell = document.createElement('td');
      const link = document.createElement('a');
      link.href = `/api/jobs/${job.id}/samples/${s.index}/${fmt}`;
      link.textContent = fmt === 'avatar' ? 'avatar glb' : fmt;
      link.download = '';
      cell.append(link);
      row.append(cell);
    }
    return row;
  });
  $('downloads').replaceChildren(...rows);
}

function grid(n) {
  const cols = Math.max(1, Math.min(n, 2));
  return { cols, rows: Math.max(1, Math.ceil(n / cols)) };
}

const shown = { time: 0, frame: 0 };

function render() {
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (canvas.width !== Math.floor(width * renderer.getPixelRatio()) || canvas.height !== Math.floor(height * renderer.getPixelRatio())) {
    renderer.setSize(width, height, false);
  }
  const time = audio.currentTime || 0;
  const { cols, rows } = grid(state.views.length);
  const w = width / cols;
  const h = height / rows;
  renderer.setScissorTest(true);
  renderer.setClearColor(0x0d0f12);
  renderer.clear();
  state.views.forEach((view, i) => {
    if (view.clip) view.mixer.setTime(Math.min(time, view.clip.duration - 1e-3));
    const x = (i % cols) * w;
    const y = height - (Math.floor(i / cols) + 1) * h;
    renderer.setViewport(x, y, w, h);
    renderer.setScissor(x, y, w, h);
    camera.aspect = w / h;
    camera.updateProjectionMatrix();
    renderer.render(view.scene, camera);
  });
  shown.time = time;
  shown.frame += 1;
  const scrub = $('scrub');
  if (document.activeElement !== scrub) scrub.value = time.toFixed(2);
  $('clock').textContent = `${time.toFixed(2)} / ${(audio.duration || 0).toFixed(2)} s`;
  $('play').textContent = audio.paused ? '▶' : '❚❚';
  requestAnimationFrame(render);
}

// ---------------------------------------------------------------- wiring
async function init() {
  state.config = await api('/api/config');
  $('model').replaceChildren(...state.config.models.map((m) => new Option(m, m)));
  $('samples').max = state.config.max_samples;
  $('steps').max = state.config.max_steps;
  $('avatar-box').hidden = !state.config.avatar;
  $('speech-file').addEventListener('change', (e) => { const f = e.target.files[0]; if (f) takeSpeech(f, f.name); });
  $('style-file').addEventListener('change', (e) => takeOptional('style', e.target, $('style-info')));
  $('avatar-file').addEventListener('change', (e) => takeOptional('avatar', e.target, $('avatar-info')));
  $('record').addEventListener('click', toggleRecording);
  $('settings').addEventListener('submit', generate);
  $('play').addEventListener('click', () => (audio.paused ? audio.play() : audio.pause()));
  $('scrub').addEventListener('input', (e) => { audio.currentTime = Number(e.target.value); });
  $('loop').addEventListener('change', (e) => { audio.loop = e.target.checked; });
  if (!window.MediaRecorder || !navigator.mediaDevices) $('record').disabled = true;
  requestAnimationFrame(render);
}

window.studio = {
  /** The finished job shown (JSON from /api/jobs/{id}), or null. */
  get job() { return state.job; },
  /** Number of heads shown. */
  get views() { return state.views.length; },
  /** Audio time (s) and render count of the last drawn frame. */
  get shown() { return { ...shown }; },
  /** Morph target names of sample i's head, in influence order. */
  morphNames(i = 0) {
    const mesh = state.views[i] && state.views[i].mesh;
    if (!mesh) return [];
    const names = [];
    for (const [name, index] of Object.entries(mesh.morphTargetDictionary || {})) names[index] = name;
    return names;
  },
  /** Morph influences of sample i's head as last drawn (array of numbers). */
  influences(i = 0) {
    const mesh = state.views[i] && state.views[i].mesh;
    return mesh ? Array.from(mesh.morphTargetInfluences) : [];
  },
};

init().catch((err) => showError(err.message));
